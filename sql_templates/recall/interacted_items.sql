{% import 'core/_macros.sql' as m %}
-- The items one user had any event with (impressions included) since `since`, to leave out
-- of the user's recall.  The caller passes the earliest creation time an item of the active
-- version can have, so every interaction with one of its items is in the window and older
-- events are never read.  The user column is compared as the raw table stores it, so an
-- index on the events' user column (the demo's has one) serves the lookup.
select distinct
    e.{{ events.columns['item_id'] | ident }}::text as item_id
from {{ m.raw_table(events) }} as e
where e.{{ events.columns['user_id'] | ident }} = %(user_id)s
  and e.{{ events.columns['event_time'] | ident }} >= %(since)s;
