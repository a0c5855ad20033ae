{% import 'core/_macros.sql' as m %}
-- The items created since `created_from` by authors whose row changed: their features read
-- the author's row, so they are embedded again.
select i.{{ items.columns['item_id'] | ident }}::text as item_id
from {{ m.raw_table(items) }} as i
where i.{{ items.columns['author_id'] | ident }}::text = any(%(author_ids)s)
  and i.{{ items.columns['create_time'] | ident }} >= %(created_from)s;
