-- Start an A/B split (registry/experiments.py checked the challenger and the share); the
-- partial unique index experiments_one_running refuses a second running experiment.
insert into {{ qualified(schema, 'experiments') }}
    (model_name, challenger, share, salt, started_by, reason)
values (%(model_name)s, %(challenger)s, %(share)s, %(salt)s, %(actor)s, %(reason)s)
returning experiment_id;
