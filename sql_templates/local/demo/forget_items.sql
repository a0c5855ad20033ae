{% import 'core/_macros.sql' as m %}
-- bench/freshness.py between measurements: the items it inserted (ids with a prefix) leave
-- the raw items table, the version's partition and the stream's feature table, so that each
-- measurement starts from the same tables (REINDEX and VACUUM follow, outside a transaction).
with

raw_rows as (
    delete from {{ m.raw_table(items) }} as i
    where i.{{ items.columns['item_id'] | ident }}::text like %(prefix)s || '%%'
    returning 1
),

stream_rows as (
    delete from {{ qualified(schema, 'stream_item_features') }}
    where item_id like %(prefix)s || '%%'
    returning 1
),

vector_rows as (
    delete from {{ qualified(schema, 'item_embeddings') }}
    where model_version = %(version)s
      and item_id like %(prefix)s || '%%'
    returning 1
)

select
    (select count(*) from raw_rows) as raw_rows,
    (select count(*) from stream_rows) as stream_rows,
    (select count(*) from vector_rows) as vector_rows;
