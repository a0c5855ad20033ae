{% import 'core/_macros.sql' as m %}
-- How many items were created in the period: new-item reach's denominator.
select count(*)
from {{ m.raw_table(items) }} as i
where i.{{ items.columns['create_time'] | ident }} >= %(served_from)s
  and i.{{ items.columns['create_time'] | ident }} < %(served_to)s;
