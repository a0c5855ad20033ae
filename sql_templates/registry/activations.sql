-- The history of the model's active version, newest change first (every change leaves a row;
-- registry/ddl/model_tables.sql).
select activation_id, changed_at, action, from_version, from_run, to_version, to_run, actor,
       source, pipeline_run, reason, gate
from {{ qualified(schema, 'activations') }}
where model_name = %(model_name)s
  {% if version %}and (to_version = %(model_version)s or from_version = %(model_version)s){% endif %}
order by activation_id desc
{% if limit %}limit %(limit)s{% endif %};
