-- A task of the holding run is alive.
update {{ qualified(schema, 'run_lock') }}
set heartbeat_at = now()
where model_name = %(model_name)s
  and pipeline_run = %(pipeline_run)s;
