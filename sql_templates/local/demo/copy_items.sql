{% import 'core/_macros.sql' as m %}
-- New items for the demo's real-time step and bench/freshness.py: existing items' rows copied
-- under new ids and created now (every other column as the original's, whatever the items
-- table holds); the stream worker picks them up from the change log, all at the commit.
with

new_items as (
    -- the k-th new id copies the k-th source item
    select
        n.source_id,
        n.item_id
    from unnest(%(source_ids)s::text[], %(item_ids)s::text[]) as n(source_id, item_id)
),

source as (
    select
        n.item_id,
        i
    from new_items as n
    join {{ m.raw_table(items) }} as i
        on i.{{ items.columns['item_id'] | ident }}::text = n.source_id
)

insert into {{ m.raw_table(items) }}
select (jsonb_populate_record(
    null::{{ m.raw_table(items) }},
    to_jsonb(source.i) || jsonb_build_object(%(id_column)s::text, source.item_id,
                                             %(time_column)s::text, now())
)).*
from source;
