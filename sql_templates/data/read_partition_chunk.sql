-- One chunk of a training partition in its read order (shuffle_key): the rows whose key lies
-- between the first_key and last_key parameters, each column as one array in key order.  The
-- client decodes a column at a time instead of building a Python tuple per sample row
-- (read_partition.sql): a fifth of the trainer's CPU for the same rows, CPU that the first
-- epoch's read takes from the model.  shuffle_key numbers the partition's rows 1..n
-- (samples.sql), so the client cuts the chunks by key ranges (read_partition_last_key.sql
-- gives n): an index range scan each, already in key order, so the ordered aggregates sort
-- nothing.
select
    array_agg(sample_date order by shuffle_key) as sample_date,
    array_agg(item_id order by shuffle_key) as item_id,
    array_agg({{ label | ident }} order by shuffle_key) as {{ label | ident }}{% for f in features %},
    array_agg({{ f.name | ident }} order by shuffle_key) as {{ f.name | ident }}{% endfor %}

from {{ qualified(schema, table) }}
where dt = %(bizdate)s::date
  and shuffle_key between %(first_key)s and %(last_key)s;
