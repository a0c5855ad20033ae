-- The filled training stage's read order: an index on shuffle_key (samples.sql wrote the rows
-- in its order, so an index scan reads the table front to back), and the statistics that let
-- the planner see that (the correlation of 1) and pick the index scan over a sort.
create index on {{ qualified(schema, stage) }} (shuffle_key);
analyze {{ qualified(schema, stage) }};
