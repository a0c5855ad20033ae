{% from 'online/_attribution.sql' import attribution_ctes %}
{% import 'core/_macros.sql' as m %}
-- The new items (created in the period) that a version, arm, experiment and channel served,
-- with the minutes from creation to their first serving and to their first credited
-- positive event there (new-item reach, dropoutnet/online/metrics.py; the period's count of
-- new items is new_item_count.sql).  Attribution: _attribution.sql.
with {{ attribution_ctes(schema, events, has_request_id, experiment) }},

new_items as (
    select
        i.{{ items.columns['item_id'] | ident }}::text as item_id,
        i.{{ items.columns['create_time'] | ident }} as created_at
    from {{ m.raw_table(items) }} as i
    where i.{{ items.columns['create_time'] | ident }} >= %(served_from)s
      and i.{{ items.columns['create_time'] | ident }} < %(served_to)s
)

select
    s.model_version, s.arm, s.experiment_id, s.channel, n.item_id,
    extract(epoch from min(s.served_at) - n.created_at) / 60.0 as minutes_to_served,
    extract(epoch from min(c.first_click) - n.created_at) / 60.0 as minutes_to_click
from new_items as n
inner join served as s
    on s.item_id = n.item_id
left join clicked as c
    on c.request_id = s.request_id
   and c.served_at = s.served_at
   and c.position = s.position
group by 1, 2, 3, 4, 5, n.created_at;
