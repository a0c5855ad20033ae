-- The worker's progress (see ddl/stream_tables.sql), replaced at each heartbeat.
insert into {{ qualified(schema, 'stream_progress') }}
    (model_name, confirmed_lsn, lag_seconds, last_commit_at, embedded_total, items_per_second,
     heartbeat_at)
values (%(model_name)s, %(confirmed_lsn)s::pg_lsn, %(lag_seconds)s, %(last_commit_at)s,
        %(embedded_total)s, %(items_per_second)s, now())
on conflict (model_name) do update
set confirmed_lsn = excluded.confirmed_lsn,
    lag_seconds = excluded.lag_seconds,
    last_commit_at = excluded.last_commit_at,
    embedded_total = excluded.embedded_total,
    items_per_second = excluded.items_per_second,
    heartbeat_at = excluded.heartbeat_at;
