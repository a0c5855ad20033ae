-- The item tower's input for the candidate pool: items created within candidate_window_days
-- ending at the bizdate (or the given item ids), as of the start of the bizdate.  Items created on the bizdate have
-- no behaviour yet: they are encoded cold, exactly as the model saw dropped rows in training.
-- Each row also carries the item's filterable values (`attributes`, see below).
{% import 'data/_features.sql' as features with context %}
{% import 'core/_macros.sql' as m %}
with

requests as (
    select
        %(bizdate)s::date as as_of,
        null::text as user_id,
        i.{{ features.col('items', 'item_id') }}::text as item_id
    from {{ m.raw_table(raw.items) }} as i
    {% if by_id | default(false) %}
    -- the stream worker: the items whose rows (or the rows they depend on) just changed
    where i.{{ features.col('items', 'item_id') }}::text = any(%(item_ids)s)
    {% else %}
    where i.{{ features.col('items', 'create_time') }} >= %(created_from)s
      and i.{{ features.col('items', 'create_time') }} < %(created_to)s
    {% endif %}
),
{{ features.ctes() }}

featured as (
    select
{{ features.columns() }}
        r.item_id,
        i.{{ features.col('items', 'create_time') }} as created_at,
        -- the item's values of retrieval.filter_columns, stored with its vector for filtered
        -- recall: {"column": "value as text"}, a NULL value left out
        {% if filter_columns %}
        jsonb_strip_nulls(jsonb_object(
            %(filter_columns)s::text[],
            array[{% for c in filter_columns %}i.{{ c | ident }}::text{{ ', ' if not loop.last }}{% endfor %}]
        )) as attributes
        {% else %}
        '{}'::jsonb as attributes
        {% endif %}
    from requests as r
{{ features.joins() }}
)

select * from featured
order by item_id;
