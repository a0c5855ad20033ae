-- Embeddings, one partition per model version (the bizdate as yyyymmdd).  Retrieval only
-- compares a user vector with item vectors of the same version.  An item row also carries
-- `attributes`: the values of the config's retrieval.filter_columns (raw item columns, as
-- text), which a recall can filter on.
-- `embedding` is storage.vector_type: pgvector's `vector` (the model's float32s exactly) or
-- `halfvec` (their float16 roundings: half the bytes per vector); one type per schema.
create schema if not exists {{ schema | ident }};

create table if not exists {{ qualified(schema, 'user_embeddings') }} (
    model_version text not null,
    user_id text not null,
    embedding {{ vector_sql_type(vector_type, dim) }} not null,
    primary key (model_version, user_id)
) partition by list (model_version);

create table if not exists {{ qualified(schema, 'item_embeddings') }} (
    model_version text not null,
    item_id text not null,
    created_at timestamptz,
    embedding {{ vector_sql_type(vector_type, dim) }} not null,
    attributes jsonb not null default '{}'::jsonb,
    primary key (model_version, item_id)
) partition by list (model_version);
