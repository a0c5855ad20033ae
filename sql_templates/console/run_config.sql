-- The config a training run trained with (null for runs recorded before configs were).
select config
from {{ qualified(schema, 'runs') }}
where model_name = %(model_name)s
  and run_id = %(run_id)s;
