{% import 'core/_macros.sql' as m %}
-- A user's latest events, newest first, each with the event's type and time: the recall
-- playground's "recent history".  The user column is compared as the raw table stores it.
select e.{{ events.columns['item_id'] | ident }}::text as item_id,
       e.{{ events.columns['event_type'] | ident }}::text as event_type,
       e.{{ events.columns['event_time'] | ident }} as event_time
from {{ m.raw_table(events) }} as e
where e.{{ events.columns['user_id'] | ident }} = %(user_id)s
order by e.{{ events.columns['event_time'] | ident }} desc
limit %(limit)s;
