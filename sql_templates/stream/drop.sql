-- Retire the worker's change log: the slot (and the change log it keeps) and the publication.
select pg_drop_replication_slot(slot_name)
from pg_replication_slots
where slot_name = %(slot)s;

drop publication if exists {{ publication | ident }};
