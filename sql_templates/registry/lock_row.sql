-- The model's run lock row, locked for this transaction (NULL set when nobody holds it).
select pipeline_run, bizdate, acquired_at, heartbeat_at,
       extract(epoch from now() - heartbeat_at) as idle_seconds
from {{ qualified(schema, 'run_lock') }}
where model_name = %(model_name)s
for update;
