copy {{ qualified(schema, stage) }} ({% for c in columns %}{{ c | ident }}{{ ', ' if not loop.last }}{% endfor %}) from stdin
