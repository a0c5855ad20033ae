{% import 'core/_macros.sql' as m %}
-- A new item for the demo's real-time step: an existing item's row copied under a new id and
-- created now (every other column as the original's, whatever the items table holds); the
-- stream worker picks it up from the change log.
with

source as (
    select i
    from {{ m.raw_table(items) }} as i
    where i.{{ items.columns['item_id'] | ident }}::text = %(source_id)s
)

insert into {{ m.raw_table(items) }}
select (jsonb_populate_record(
    null::{{ m.raw_table(items) }},
    to_jsonb(source.i) || jsonb_build_object(%(id_column)s::text, %(item_id)s::text,
                                             %(time_column)s::text, now())
)).*
from source;
