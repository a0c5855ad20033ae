-- Tables the config reads that the publication does not hold yet.
alter publication {{ publication | ident }}
add table {% for t in tables %}{{ qualified(t[0], t[1]) }}{{ ", " if not loop.last }}{% endfor %};
