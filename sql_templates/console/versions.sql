-- The published versions of a model, newest bizdate first (one of them when a version is
-- given): the run each holds with its origin and the gate's decision, the samples it trained
-- on and was judged by, and whether it is the active version.
with

active as (
    select model_version, published_at
    from {{ qualified(schema, 'active_version') }}
    where model_name = %(model_name)s
),

versions as (
    select model_version, bizdate, run_id, export_path, published_at, retired_at
    from {{ qualified(schema, 'model_versions') }}
    where model_name = %(model_name)s
      {% if version %}and model_version = %(model_version)s{% endif %}
),

runs as (
    select run_id, pipeline_run, config_hash, warm_start_from, warm_start_run, decision, gate,
           started_at, finished_at
    from {{ qualified(schema, 'runs') }}
    where model_name = %(model_name)s
),

metrics as (
    select dt, model_version, metrics
    from {{ qualified(schema, 'metrics') }}
)

select v.model_version,
       v.bizdate,
       v.run_id,
       v.export_path,
       v.published_at,
       v.retired_at,
       v.model_version = a.model_version as active,
       case when v.model_version = a.model_version then a.published_at end as live_since,
       r.pipeline_run,
       r.config_hash,
       r.warm_start_from,
       r.warm_start_run,
       r.decision,
       r.gate,
       r.started_at,
       r.finished_at,
       (m.metrics ->> 'train_samples')::bigint as train_samples,
       (m.metrics ->> 'train_positives')::bigint as train_positives,
       m.metrics -> 'splits' as splits
from versions as v
left join active as a on true
left join runs as r on r.run_id = v.run_id
left join metrics as m
    on m.dt = v.bizdate
   and m.model_version = v.model_version
order by v.bizdate desc;
