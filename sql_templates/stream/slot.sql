-- The worker's logical replication slot: its confirmed position and how far the server's
-- change log has gone past it (no row: the slot does not exist).
select slot_name,
       confirmed_flush_lsn::text,
       pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint as lag_bytes,
       active
from pg_replication_slots
where slot_name = %(slot)s;
