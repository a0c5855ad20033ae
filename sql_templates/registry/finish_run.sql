-- A training run ended (succeeded: its checkpoint is complete and current; failed).
update {{ qualified(schema, 'runs') }}
set status = %(status)s,
    finished_at = now()
where model_name = %(model_name)s
  and run_id = %(run_id)s;
