-- A fresh staging table with the parent's columns, defaults and not-null constraints.
-- The task fills it, then partition/swap.sql turns it into the parent's partition.
drop table if exists {{ qualified(schema, stage) }};
create table {{ qualified(schema, stage) }}
    (like {{ qualified(schema, parent) }} including defaults including constraints);
