-- The worker's dead letters so far (its slot's lag comes from stream/slot.sql).
select count(*), max(created_at)
from {{ qualified(schema, 'stream_dead_letters') }}
where model_name = %(model_name)s;
