-- Retention dropped a published version's embeddings and towers: it can no longer be rolled
-- back to.  Its row stays, as the record that it was published.
update {{ qualified(schema, 'model_versions') }}
set retired_at = now()
where model_name = %(model_name)s
  and model_version = %(model_version)s;

delete from {{ qualified(schema, 'version_parts') }}
where model_name = %(model_name)s
  and model_version = %(model_version)s;

-- an experiment on a retired challenger cannot serve it: it stops
update {{ qualified(schema, 'experiments') }}
set stopped_at = now(),
    stopped_by = 'registry',
    stop_reason = 'its challenger was retired (retention dropped its embeddings)'
where model_name = %(model_name)s
  and stopped_at is null
  and challenger = %(model_version)s;
