-- Record a published version: the run whose embeddings were just attached as its partitions
-- and the never-overwritten copy of that run's towers (the caller's transaction).
insert into {{ qualified(schema, 'model_versions') }}
    (model_name, model_version, bizdate, export_path, run_id, published_at)
values (%(model_name)s, %(model_version)s, %(bizdate)s, %(export_path)s, %(run_id)s, now())
on conflict (model_name, model_version) do update
set bizdate = excluded.bizdate,
    export_path = excluded.export_path,
    run_id = excluded.run_id,
    published_at = excluded.published_at;
