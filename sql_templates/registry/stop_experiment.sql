-- Stop the model's running experiment: from this transaction on, every user is on the
-- active version.
update {{ qualified(schema, 'experiments') }}
set stopped_at = now(),
    stopped_by = %(actor)s,
    stop_reason = %(reason)s
where model_name = %(model_name)s
  and stopped_at is null
returning experiment_id;
