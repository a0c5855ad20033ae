-- A fresh staging table with the parent's columns, defaults, not-null constraints and
-- indexes (the embedding tables' primary key), so that attaching it later adopts the index
-- instead of building one under the parent's lock.  The task fills it, then
-- partition/swap.sql (or keep_candidate.sql) turns it into a partition (or a candidate).
drop table if exists {{ qualified(schema, stage) }};
create table {{ qualified(schema, stage) }}
    (like {{ qualified(schema, parent) }} including defaults including constraints
     including indexes);
