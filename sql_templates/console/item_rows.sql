{% import 'core/_macros.sql' as m %}
-- The raw rows of some items (what the playground shows as each item's content), by id.
select i.{{ items.columns['item_id'] | ident }}::text as item_id,
       to_jsonb(i) as content
from {{ m.raw_table(items) }} as i
where i.{{ items.columns['item_id'] | ident }}::text = any(%(item_ids)s);
