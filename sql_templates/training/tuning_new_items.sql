-- The items created in a range of days, with their creation day: the pseudo-cold items that
-- model selection holds out of training (see dropoutnet/training/tuning.py).
{% import 'core/_macros.sql' as m %}
{% import 'data/_features.sql' as features with context %}
select
    i.{{ features.col('items', 'item_id') }}::text as item_id,
    i.{{ features.col('items', 'create_time') }}::date as created
from {{ m.raw_table(raw.items) }} as i
where i.{{ features.col('items', 'create_time') }} >= %(created_from)s
  and i.{{ features.col('items', 'create_time') }} < %(created_to)s;
