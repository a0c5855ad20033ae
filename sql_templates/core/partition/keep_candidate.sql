-- Keep a filled staging table as the candidate partition of a version, not yet attached:
-- the live partition (if any) stays untouched until publish swaps the candidate in.
drop table if exists {{ qualified(schema, candidate) }};
alter table {{ qualified(schema, stage) }} rename to {{ candidate | ident }};
