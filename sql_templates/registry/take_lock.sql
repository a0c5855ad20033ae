-- Hold (or keep holding, or take over) the model's run lock; the caller checked the holder.
insert into {{ qualified(schema, 'run_lock') }} (model_name, pipeline_run, bizdate)
values (%(model_name)s, %(pipeline_run)s, %(bizdate)s)
on conflict (model_name) do update
set pipeline_run = excluded.pipeline_run,
    bizdate = excluded.bizdate,
    acquired_at = case
        when {{ qualified(schema, 'run_lock') }}.pipeline_run = excluded.pipeline_run
            then {{ qualified(schema, 'run_lock') }}.acquired_at
        else now()
    end,
    heartbeat_at = now();
