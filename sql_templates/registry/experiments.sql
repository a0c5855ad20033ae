-- The model's experiments, newest first (one of them when an id is given), with whether
-- each is serving: running, its challenger published and not retired, and not the active
-- version (a state the registry's own statements never leave, but a hand-written change
-- could).
with active as (
    select model_version
    from {{ qualified(schema, 'active_version') }}
    where model_name = %(model_name)s
)

select
    e.experiment_id, e.challenger, e.share, e.salt, e.started_at, e.started_by, e.reason,
    e.stopped_at, e.stopped_by, e.stop_reason,
    (e.stopped_at is null
     and v.model_version is not null
     and v.retired_at is null
     and e.challenger is distinct from (select model_version from active)) as serving
from {{ qualified(schema, 'experiments') }} as e
left join {{ qualified(schema, 'model_versions') }} as v
    on v.model_name = e.model_name
   and v.model_version = e.challenger
where e.model_name = %(model_name)s
{% if running %}
  and e.stopped_at is null
{% endif %}
{% if experiment_id %}
  and e.experiment_id = %(experiment_id)s
{% endif %}
order by e.experiment_id desc
{% if limit %}
limit %(limit)s
{% endif %}
;
