-- Drop one partition, candidate or staging table that retention no longer keeps.
drop table if exists {{ qualified(schema, table) }};
