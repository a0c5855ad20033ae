-- The popularity baseline for the bizdate's new items: a new item has no clicks of its own,
-- so it is ranked by its author's positive training samples in the window (ties: item id).
-- The same ranking for every user.
{% import '_macros.sql' as m %}
{% set items = raw.items %}
{% set col_item = items.columns['item_id'] | ident %}
{% set col_author = items.columns['author_id'] | ident %}
{% set col_created = items.columns['create_time'] | ident %}
with

author_positives as (
    select
        i.{{ col_author }}::text as author_id,
        sum(s.{{ label | ident }}) as positives
    from {{ qualified(schema, 'samples') }} as s
    join {{ m.raw_table(items) }} as i
      on i.{{ col_item }}::text = s.item_id
    where s.dt = %(bizdate)s::date
    group by 1
),

new_items as (
    select
        i.{{ col_item }}::text as item_id,
        i.{{ col_author }}::text as author_id
    from {{ m.raw_table(items) }} as i
    where i.{{ col_created }} >= %(created_from)s
      and i.{{ col_created }} < %(created_to)s
)

select n.item_id
from new_items as n
left join author_positives as p
  on p.author_id = n.author_id
order by coalesce(p.positives, 0) desc, n.item_id;
