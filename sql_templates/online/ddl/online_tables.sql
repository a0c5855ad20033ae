-- The online loop's tables (dropoutnet/online/): what recall served and the online metrics
-- of each bizdate (the experiments are the registry's: registry/ddl/model_tables.sql).
create schema if not exists {{ schema | ident }};

-- Every list the recall API (source 'api') or the CLI's recall (source 'cli') answered, one
-- row per response, one partition per UTC day of served_at (dt), written in batches by the
-- served-log writer (online/copy_served.sql).  Items are in served order: item_ids[k] was at
-- position k (1-based) with scores[k].  request_id is not unique: a caller may pass its own
-- and retry with it.
create table if not exists {{ qualified(schema, 'served_lists') }} (
    dt date not null,
    request_id uuid not null,
    served_at timestamptz not null,
    source text not null check (source in ('api', 'cli')),
    user_id text not null,
    model_version text not null,
    -- 'active' without an experiment, 'control' or 'challenger' in experiment_id, 'pinned'
    -- when the caller named the version
    arm text not null check (arm in ('active', 'control', 'challenger', 'pinned')),
    experiment_id bigint,
    -- 'all' (every item of the version) or 'newest' (created_within_hours)
    channel text not null check (channel in ('all', 'newest')),
    filters jsonb,
    item_ids text[] not null,
    scores real[] not null
) partition by list (dt);

-- The online figures of one bizdate per (version, arm, channel, experiment): replaced as a
-- whole by each run of online_metrics for that bizdate (online/save_metrics.sql).
create table if not exists {{ qualified(schema, 'online_metrics') }} (
    dt date not null,
    model_name text not null,
    model_version text not null,
    arm text not null,
    channel text not null,
    experiment_id bigint,
    metrics jsonb not null,
    computed_at timestamptz not null default now()
);
create index if not exists online_metrics_dt
    on {{ qualified(schema, 'online_metrics') }} (model_name, dt);
