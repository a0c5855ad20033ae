-- The run that wrote a version's candidate part (in the transaction that wrote the part).
insert into {{ qualified(schema, 'version_parts') }} (model_name, model_version, part, run_id)
values (%(model_name)s, %(model_version)s, %(part)s, %(run_id)s)
on conflict (model_name, model_version, part) do update
set run_id = excluded.run_id,
    written_at = now();
