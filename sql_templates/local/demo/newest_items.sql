{% import 'core/_macros.sql' as m %}
-- The ids of the newest items: the rows the demo copies as new ones.
select i.{{ items.columns['item_id'] | ident }}::text
from {{ m.raw_table(items) }} as i
order by i.{{ items.columns['create_time'] | ident }} desc, 1
limit %(n)s;
