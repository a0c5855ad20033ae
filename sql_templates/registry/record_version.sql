-- Record the version and make it the model's active one, in the caller's transaction:
-- a reader sees the old active version or the new one.
insert into {{ qualified(schema, 'model_versions') }} (model_name, model_version, bizdate, export_path)
values (%(model_name)s, %(model_version)s, %(bizdate)s, %(export_path)s)
on conflict (model_name, model_version) do update
set bizdate = excluded.bizdate,
    export_path = excluded.export_path,
    created_at = now();

insert into {{ qualified(schema, 'active_version') }} (model_name, model_version, published_at)
values (%(model_name)s, %(model_version)s, now())
on conflict (model_name) do update
set model_version = excluded.model_version,
    published_at = excluded.published_at;
