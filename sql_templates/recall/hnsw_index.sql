-- The inner-product HNSW index of one item-embedding partition, built after its load, in
-- the load's transaction.  The graph is built in maintenance_work_mem
-- (retrieval.hnsw.maintenance_work_mem, set for this transaction only): a graph that
-- outgrows it is finished on disk, several times slower (pgvector says so in a notice).
-- The operator class matches the stored type (storage.vector_type): vector_ip_ops or
-- halfvec_ip_ops.
select set_config('maintenance_work_mem', %(maintenance_work_mem)s, true);
create index on {{ qualified(schema, stage) }}
    using hnsw (embedding {{ vector_sql_type(vector_type) }}_ip_ops)
    with (m = {{ m | int }}, ef_construction = {{ ef_construction | int }});
