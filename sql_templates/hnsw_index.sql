-- The inner-product HNSW index of one item-embedding partition, built after its load.
set local maintenance_work_mem = '256MB';
create index on {{ qualified(schema, stage) }}
    using hnsw (embedding vector_ip_ops)
    with (m = {{ m | int }}, ef_construction = {{ ef_construction | int }});
