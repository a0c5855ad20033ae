-- The worker's last heartbeat, and how long ago it was (no row: it never ran).
select lag_seconds,
       last_commit_at,
       heartbeat_at,
       extract(epoch from now() - heartbeat_at)::double precision as heartbeat_age_seconds,
       embedded_total,
       items_per_second
from {{ qualified(schema, 'stream_progress') }}
where model_name = %(model_name)s;
