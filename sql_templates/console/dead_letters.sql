-- The stream worker's latest dead letters: the changes it could not embed, and why.
select id, item_id, lsn::text as lsn, reason, created_at
from {{ qualified(schema, 'stream_dead_letters') }}
where model_name = %(model_name)s
order by id desc
limit %(limit)s;
