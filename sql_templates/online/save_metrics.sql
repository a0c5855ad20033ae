-- Replace a bizdate's online metrics in one transaction (the caller's): a reader sees the
-- previous run's rows or this run's, never a mix.  The rows come as one JSON array.
delete from {{ qualified(schema, 'online_metrics') }}
where model_name = %(model_name)s
  and dt = %(bizdate)s;

insert into {{ qualified(schema, 'online_metrics') }}
    (dt, model_name, model_version, arm, channel, experiment_id, metrics)
select
    %(bizdate)s, %(model_name)s, r ->> 'model_version', r ->> 'arm', r ->> 'channel',
    nullif((r ->> 'experiment_id')::bigint, 0), r -> 'metrics'
from jsonb_array_elements(%(rows)s::jsonb) as r;
