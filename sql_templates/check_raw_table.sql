-- The columns of one raw table (empty when the table does not exist).  Without a configured
-- schema the table is looked up on the search path, as the pipeline's queries will.
select a.attname
from pg_attribute as a
where a.attrelid = to_regclass(
        case when %(schema)s::text is null then quote_ident(%(table)s)
             else quote_ident(%(schema)s) || '.' || quote_ident(%(table)s) end)
  and a.attnum > 0
  and not a.attisdropped;
