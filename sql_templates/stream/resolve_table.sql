-- A raw table's schema and name as the database resolves it (the config may leave the schema
-- to the search path): a publication names its tables explicitly.
select n.nspname, c.relname
from pg_class as c
join pg_namespace as n on n.oid = c.relnamespace
where c.oid = to_regclass(%(name)s);
