-- A version's vectors into its staging table, in COPY's binary format (see vectors.copy_binary).
copy {{ qualified(schema, stage) }} ({% for c in columns %}{{ c | ident }}{{ ', ' if not loop.last }}{% endfor %}) from stdin with (format binary)
