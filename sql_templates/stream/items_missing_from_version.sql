{% import 'core/_macros.sql' as m %}
-- The items created since `created_from` that a version's item partition lacks: after a
-- version switch, the items that arrived after that version's pool snapshot (the worker
-- embedded them into the version active then), to embed again with the new version's tower.
with

items as (
    select i.{{ items.columns['item_id'] | ident }}::text as item_id
    from {{ m.raw_table(items) }} as i
    where i.{{ items.columns['create_time'] | ident }} >= %(created_from)s
),

stored as (
    select item_id
    from {{ qualified(schema, 'item_embeddings') }}
    where model_version = %(version)s
)

select items.item_id
from items
where not exists (select 1 from stored where stored.item_id = items.item_id)
order by items.item_id;
