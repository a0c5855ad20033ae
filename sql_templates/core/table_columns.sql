-- The columns of one table with their types (no row when the table does not exist): a raw
-- table's, to check the config's mapping, or the embedding tables', to check the vector size.
-- Without a schema the table is looked up on the search path, as the pipeline's queries will.
select
    a.attname,
    format_type(a.atttypid, a.atttypmod) as column_type
from pg_attribute as a
where a.attrelid = to_regclass(
        case when %(schema)s::text is null then quote_ident(%(table)s)
             else quote_ident(%(schema)s) || '.' || quote_ident(%(table)s) end)
  and a.attnum > 0
  and not a.attisdropped;
