-- What every recall reads first, in one round trip: the active version with its bizdate, run
-- and towers (as active_version.sql reads it), and the newest running experiment with whether
-- it splits traffic now (as experiments.sql decides it: its challenger published and not
-- retired, and not the active version).  No row before the first publish.
with active as (
    select a.model_name, a.model_version, v.bizdate, v.run_id, v.export_path, a.published_at
    from {{ qualified(schema, 'active_version') }} as a
    left join {{ qualified(schema, 'model_versions') }} as v
        on v.model_name = a.model_name
       and v.model_version = a.model_version
    where a.model_name = %(model_name)s
),

running as (
    select e.*
    from {{ qualified(schema, 'experiments') }} as e
    where e.model_name = %(model_name)s
      and e.stopped_at is null
    order by e.experiment_id desc
    limit 1
)

select
    a.model_version, a.bizdate, a.run_id, a.export_path, a.published_at,
    r.experiment_id, r.challenger, r.share, r.salt, r.started_at, r.started_by, r.reason,
    r.stopped_at, r.stopped_by, r.stop_reason,
    (r.experiment_id is not null
     and c.model_version is not null
     and c.retired_at is null
     and r.challenger is distinct from a.model_version) as serving
from active as a
left join running as r
    on true
left join {{ qualified(schema, 'model_versions') }} as c
    on c.model_name = r.model_name
   and c.model_version = r.challenger;
