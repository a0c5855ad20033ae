-- The bizdate's metrics; a rerun replaces the row.
insert into {{ qualified(schema, 'metrics') }} (dt, model_version, metrics, computed_at)
values (%(bizdate)s, %(model_version)s, %(metrics)s, now())
on conflict (dt) do update
set model_version = excluded.model_version,
    metrics = excluded.metrics,
    computed_at = excluded.computed_at;
