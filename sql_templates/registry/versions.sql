-- The published versions of a model, newest bizdate first, with the run they hold and
-- whether each is the active one.
with

active as (
    select model_version
    from {{ qualified(schema, 'active_version') }}
    where model_name = %(model_name)s
)

select v.model_version,
       v.bizdate,
       v.run_id,
       v.export_path,
       v.published_at,
       v.retired_at,
       v.model_version = (select model_version from active) as active
from {{ qualified(schema, 'model_versions') }} as v
where v.model_name = %(model_name)s
  {% if version %}and v.model_version = %(model_version)s{% endif %}
order by v.bizdate desc;
