-- The stream worker's item vectors, into a published version's partition through its parent
-- (the row routes to the version's partition, whose HNSW index takes it at once).  An item
-- embedded again (replayed, or its text arrived later) replaces its vector: idempotent.
-- `attributes` are its filterable values (retrieval.filter_columns), as the daily path
-- stores them, so a recall's filter sees real-time items too.  The vector comes as text
-- (float16 roundings already, for halfvec: vectors.upsert_items), cast to the stored type
-- (storage.vector_type) in the row template.
insert into {{ qualified(schema, 'item_embeddings') }}
    (model_version, item_id, created_at, embedding, attributes)
values %s
on conflict (model_version, item_id) do update
set created_at = excluded.created_at,
    embedding = excluded.embedding,
    attributes = excluded.attributes;
