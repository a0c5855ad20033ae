-- One change the worker could not process (the caller's transaction).
insert into {{ qualified(schema, 'stream_dead_letters') }} (model_name, item_id, lsn, reason, change)
values (%(model_name)s, %(item_id)s, %(lsn)s::pg_lsn, %(reason)s, %(change)s);
