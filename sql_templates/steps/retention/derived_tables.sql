-- The tables of the pipeline's schema whose names start with a partitioned table's name:
-- its partitions, candidates and staging tables (`<parent>_p<yyyymmdd>[_candidate|_stage]`).
select tablename
from pg_tables
where schemaname = %(schema)s
  and starts_with(tablename, %(prefix)s)
order by tablename;
