-- A train task starts a training run.  The run lock admits one pipeline run at a time, so a
-- run of this model still marked running was killed before it could say so: it failed.
update {{ qualified(schema, 'runs') }}
set status = 'failed',
    finished_at = now()
where model_name = %(model_name)s
  and status = 'running';

insert into {{ qualified(schema, 'runs') }}
    (model_name, run_id, bizdate, pipeline_run, config_hash, config, warm_start_from,
     warm_start_run)
values (%(model_name)s, %(run_id)s, %(bizdate)s, %(pipeline_run)s, %(config_hash)s, %(config)s,
        %(warm_start_from)s, %(warm_start_run)s);
