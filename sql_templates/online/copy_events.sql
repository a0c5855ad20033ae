{% import 'core/_macros.sql' as m %}
-- The traffic simulator's impressions, clicks and likes, into the raw events table through
-- its role columns (with the response's request id where raw.events maps that role).
copy {{ m.raw_table(events) }} (
    {{ events.columns['user_id'] | ident }},
    {{ events.columns['item_id'] | ident }},
    {{ events.columns['event_type'] | ident }},
    {{ events.columns['event_time'] | ident }}
    {% if 'request_id' in events.columns %}
    , {{ events.columns['request_id'] | ident }}
    {% endif %}
)
-- text format: the server parses each value into the column's own type
from stdin
