-- Which run wrote each part of a version.
select part, run_id
from {{ qualified(schema, 'version_parts') }}
where model_name = %(model_name)s
  and model_version = %(model_version)s;
