-- Whether a bizdate's training partition holds its read order (shuffle_key): the samples
-- step writes it for every row since it exists, partitions written before have none.
select shuffle_key is not null
from {{ qualified(schema, 'samples') }}
where dt = %(bizdate)s::date
limit 1;
