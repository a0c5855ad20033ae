-- The last read-order key of a training partition (its rows are numbered 1..n by shuffle_key,
-- samples.sql): where read_partition_chunk.sql's key ranges end.  Null when the partition has
-- no key (written before it existed): such a partition is read row by row.
select max(shuffle_key)
from {{ qualified(schema, table) }}
where dt = %(bizdate)s::date;
