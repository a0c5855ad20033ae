-- The slot keeps the change log from this point until the worker confirms it has written
-- what it read (an abandoned slot keeps it forever: drop it when retiring the worker).
select lsn::text
from pg_create_logical_replication_slot(%(slot)s, 'pgoutput');
