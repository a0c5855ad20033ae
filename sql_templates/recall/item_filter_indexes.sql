-- What keeps a filtered recall cheap on one item-embedding partition, built after its load
-- (beside its HNSW index): a GIN index on the filterable values answers "does any item of
-- the version have category = x?" without a scan and serves a rare value's exact fallback; a
-- btree on creation time serves a narrow `created within` window the same way; fresh
-- statistics tell the planner how common each value is (measured on 1M items: the value
-- check takes under a millisecond, common value or absent one).
create index on {{ qualified(schema, stage) }}
    using gin (attributes jsonb_path_ops);
create index on {{ qualified(schema, stage) }} (created_at);
analyze {{ qualified(schema, stage) }};
