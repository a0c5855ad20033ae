-- Model versions, the active version per model, and the metrics of each bizdate.
create schema if not exists {{ schema | ident }};

create table if not exists {{ qualified(schema, 'model_versions') }} (
    model_name text not null,
    model_version text not null,
    bizdate date not null,
    export_path text not null,
    created_at timestamptz not null default now(),
    primary key (model_name, model_version)
);

create table if not exists {{ qualified(schema, 'active_version') }} (
    model_name text primary key,
    model_version text not null,
    published_at timestamptz not null default now()
);

create table if not exists {{ qualified(schema, 'metrics') }} (
    dt date primary key,
    model_version text not null,
    metrics jsonb not null,
    computed_at timestamptz not null default now()
);
