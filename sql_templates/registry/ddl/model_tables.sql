-- The model registry's tables (dropoutnet/registry/): training runs, the parts each
-- version's candidates came from, published versions, the active version per model and the
-- history of its changes, the run lock, and the metrics of each bizdate.
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
-- the whole config the run trained with (what compare shows the differences of)
alter table {{ qualified(schema, 'runs') }}
    add column if not exists config jsonb;

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
-- the run whose embeddings and towers the active version holds (a republished bizdate
-- changes the run and not the version's name)
alter table {{ qualified(schema, 'active_version') }}
    add column if not exists run_id text;

-- Every change of the active version, appended by a trigger on active_version in the
-- transaction that makes it: nothing moves the active version without leaving a row (not
-- even a hand-written UPDATE, recorded as action 'sql' by its database role), and no row is
-- ever updated or deleted.  Who and why come from the transaction's setting
-- dropoutnet.activation (registry/activate.sql).
create table if not exists {{ qualified(schema, 'activations') }} (
    activation_id bigint generated always as identity primary key,
    model_name text not null,
    from_version text,
    from_run text,
    to_version text not null,
    to_run text,
    action text not null,
    actor text not null,
    source text not null,
    pipeline_run text,
    reason text,
    gate jsonb,
    changed_at timestamptz not null default clock_timestamp()
);
create index if not exists activations_model_changed
    on {{ qualified(schema, 'activations') }} (model_name, changed_at);

create or replace function {{ qualified(schema, 'record_activation') }}() returns trigger
language plpgsql as $$
declare
    change jsonb := nullif(current_setting('dropoutnet.activation', true), '')::jsonb;
begin
    insert into {{ qualified(schema, 'activations') }}
        (model_name, from_version, from_run, to_version, to_run, action, actor, source,
         pipeline_run, reason, gate)
    values (
        new.model_name,
        case when tg_op = 'UPDATE' then old.model_version end,
        case when tg_op = 'UPDATE' then old.run_id end,
        new.model_version,
        new.run_id,
        coalesce(change ->> 'action', 'sql'),
        coalesce(change ->> 'actor', session_user::text),
        coalesce(change ->> 'source', 'sql'),
        change ->> 'pipeline_run',
        change ->> 'reason',
        change -> 'gate'
    );
    return null;
end
$$;

create or replace trigger active_version_history
    after insert or update on {{ qualified(schema, 'active_version') }}
    for each row execute function {{ qualified(schema, 'record_activation') }}();

create or replace function {{ qualified(schema, 'refuse_history_change') }}() returns trigger
language plpgsql as $$
begin
    raise exception 'the activation history is append-only: its rows are never changed '
                    'or deleted (%% refused)', tg_op
        using errcode = 'insufficient_privilege';
end
$$;

create or replace trigger activations_append_only
    before update or delete or truncate on {{ qualified(schema, 'activations') }}
    for each statement execute function {{ qualified(schema, 'refuse_history_change') }}();

-- A/B splits between versions: a challenger version served to the users whose salted hash
-- of their id falls below share, the rest on the active version (registry/experiments.py).
-- At most one runs per model (stopped_at is null); stopped ones stay, for their figures.  An
-- experiment never moves the active version; making its challenger active, or retiring it,
-- stops it (registry/activate.sql, retire_version.sql).
create table if not exists {{ qualified(schema, 'experiments') }} (
    experiment_id bigint generated always as identity primary key,
    model_name text not null,
    challenger text not null,
    share double precision not null check (share > 0 and share < 1),
    salt text not null,
    started_at timestamptz not null default now(),
    started_by text not null,
    reason text,
    stopped_at timestamptz,
    stopped_by text,
    stop_reason text
);
create unique index if not exists experiments_one_running
    on {{ qualified(schema, 'experiments') }} (model_name) where stopped_at is null;

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
