-- Make a recorded version the model's active one, in the caller's transaction: a reader sees
-- the old active version or the new one.  Who does it and why go first into this
-- transaction's setting dropoutnet.activation, which the trigger that appends the history
-- row reads (ddl/model_tables.sql).
select set_config('dropoutnet.activation', %(change)s, true);

insert into {{ qualified(schema, 'active_version') }} (model_name, model_version, run_id, published_at)
values (
    %(model_name)s,
    %(model_version)s,
    (
        select run_id
        from {{ qualified(schema, 'model_versions') }}
        where model_name = %(model_name)s
          and model_version = %(model_version)s
    ),
    now()
)
on conflict (model_name) do update
set model_version = excluded.model_version,
    run_id = excluded.run_id,
    published_at = excluded.published_at;

-- an experiment whose challenger becomes the active version has nothing left to compare:
-- it stops, and every user is on the active version
update {{ qualified(schema, 'experiments') }}
set stopped_at = now(),
    stopped_by = 'registry',
    stop_reason = 'its challenger became the active version ('
                  || coalesce(%(change)s::jsonb ->> 'action', 'publish') || ')'
where model_name = %(model_name)s
  and stopped_at is null
  and challenger = %(model_version)s;
