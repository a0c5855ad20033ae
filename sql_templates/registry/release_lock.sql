-- Release the run lock if this pipeline run holds it (a no-op otherwise).
delete from {{ qualified(schema, 'run_lock') }}
where model_name = %(model_name)s
  and pipeline_run = %(pipeline_run)s;
