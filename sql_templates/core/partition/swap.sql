-- Replace one partition of a list-partitioned table with a filled staging table.
-- Runs inside the caller's transaction: readers see the old partition or the new one.
drop table if exists {{ qualified(schema, partition) }};
alter table {{ qualified(schema, stage) }} rename to {{ partition | ident }};
alter table {{ qualified(schema, parent) }}
    attach partition {{ qualified(schema, partition) }} for values in (%(value)s);
