-- The model registry's tables (dropoutnet/registry.py): training runs, the parts each
-- version's candidates came from, published versions, the active version per model, the run
-- lock, and the metrics of each bizdate.
create schema if not exists {{ schema | ident }};

-- One row per train task: which pipeline run started it, from which checkpoint it warm
-- started, and what publish decided about it.
create table if not exists {{ qualified(schema, 'runs') }} (
    model_name text not null,
    run_id text not null,
    bizdate date not null,
    pipeline_run text not null,
    config_hash text not null,
    status text not null default 'running' check (status in ('running', 'succeeded', 'failed')),
    warm_start_from date,
    warm_start_run text,
    decision text,
    gate jsonb,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    primary key (model_name, run_id)
);

-- The run that wrote each part of a version that is waiting to be published (its user and
-- item embedding candidates, its metrics); publish requires one run for all of them.
create table if not exists {{ qualified(schema, 'version_parts') }} (
    model_name text not null,
    model_version text not null,
    part text not null check (part in ('user_embeddings', 'item_embeddings', 'metrics')),
    run_id text not null,
    written_at timestamptz not null default now(),
    primary key (model_name, model_version, part)
);

-- Published versions: the run whose embeddings are the version's attached partitions and
-- whose towers are at export_path.
create table if not exists {{ qualified(schema, 'model_versions') }} (
    model_name text not null,
    model_version text not null,
    bizdate date not null,
    export_path text not null,
    created_at timestamptz not null default now(),
    primary key (model_name, model_version)
);
alter table {{ qualified(schema, 'model_versions') }}
    add column if not exists run_id text,
    add column if not exists published_at timestamptz,
    add column if not exists retired_at timestamptz;

create table if not exists {{ qualified(schema, 'active_version') }} (
    model_name text primary key,
    model_version text not null,
    published_at timestamptz not null default now()
);

-- At most one pipeline run per model holds this row; its tasks renew heartbeat_at.
create table if not exists {{ qualified(schema, 'run_lock') }} (
    model_name text primary key,
    pipeline_run text not null,
    bizdate date not null,
    acquired_at timestamptz not null default now(),
    heartbeat_at timestamptz not null default now()
);

create table if not exists {{ qualified(schema, 'metrics') }} (
    dt date primary key,
    model_version text not null,
    metrics jsonb not null,
    computed_at timestamptz not null default now()
);
