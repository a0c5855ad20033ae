-- The schemas and tables of this database that the superuser (the connected role) owns,
-- outside the system schemas: left by a data folder from before the pipeline role existed,
-- to be handed to the pipeline role, which drops, swaps and indexes them (see
-- hand_over.sql).  Their indexes and partitions' indexes follow their tables.
select n.nspname as schema_name, null::name as table_name
from pg_namespace as n
where pg_get_userbyid(n.nspowner) = current_user
  and n.nspname !~ '^pg_'
  and n.nspname <> 'information_schema'
union all
select n.nspname, c.relname
from pg_class as c
join pg_namespace as n
  on n.oid = c.relnamespace
where pg_get_userbyid(c.relowner) = current_user
  and c.relkind in ('r', 'p')  -- tables, partitions and partitioned tables
  and n.nspname !~ '^pg_'
  and n.nspname <> 'information_schema'
order by 1, 2 nulls first;
