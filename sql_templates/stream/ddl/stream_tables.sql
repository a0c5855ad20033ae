-- The stream worker's dead letters: a change it could not process, with why and where in the
-- change log it was, so that the stream goes on and an operator can fix the row and replay.
create schema if not exists {{ schema | ident }};

create table if not exists {{ qualified(schema, 'stream_dead_letters') }} (
    id bigserial primary key,
    model_name text not null,
    item_id text,
    lsn pg_lsn not null,
    reason text not null,
    change jsonb not null,
    created_at timestamptz not null default now()
);

-- The worker's progress, one row per model, written every stream.heartbeat_seconds while it
-- runs: how far it has confirmed, how far behind the source it was, and when it last said so
-- (a slot with no recent heartbeat and no reader is stale: it keeps the change log).
create table if not exists {{ qualified(schema, 'stream_progress') }} (
    model_name text primary key,
    confirmed_lsn pg_lsn,
    lag_seconds double precision not null,
    last_commit_at timestamptz,
    embedded_total bigint not null,
    items_per_second double precision not null,
    heartbeat_at timestamptz not null
);

-- The cold-start feature table: each item the worker embedded, one row per item, with the
-- feature values it was embedded from (the daily item query's, as JSON) and when they were
-- last read; the Flink job of EasyRec's recipe keeps the same table.
create table if not exists {{ qualified(schema, 'stream_item_features') }} (
    model_name text not null,
    item_id text not null,
    created_at timestamptz,
    features jsonb not null,
    updated_at timestamptz not null default now(),
    primary key (model_name, item_id)
);
