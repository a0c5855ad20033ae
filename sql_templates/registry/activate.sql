-- Make a recorded version the model's active one, in the caller's transaction: a reader
-- sees the old active version or the new one.
insert into {{ qualified(schema, 'active_version') }} (model_name, model_version, published_at)
values (%(model_name)s, %(model_version)s, now())
on conflict (model_name) do update
set model_version = excluded.model_version,
    published_at = excluded.published_at;
