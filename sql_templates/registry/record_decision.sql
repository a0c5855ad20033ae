-- What publish decided about a training run, and the gate figures it decided on.
update {{ qualified(schema, 'runs') }}
set decision = %(decision)s,
    gate = %(gate)s
where model_name = %(model_name)s
  and run_id = %(run_id)s;
