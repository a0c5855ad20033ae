-- The served log's partition of one day, made by the writer before it copies the day's
-- first rows (runs under core/ddl/lock.sql, so that two writers take turns).
create table if not exists {{ qualified(schema, partition) }}
    partition of {{ qualified(schema, 'served_lists') }} for values in (%(dt)s);
