{#
  Point-in-time features, shared by the sample, user-embedding and item-embedding queries.

  The caller defines a CTE named `requests` with columns (as_of date, user_id text,
  item_id text): the rows that need features, each as of the start of day `as_of`.
  Preference statistics only read events strictly before `as_of` (the day before a sample
  and earlier), so a row never sees its own day or its future.  An entity with no event in
  the preference window gets NULL preference features: that is how a cold user or item looks
  to the model, which encodes it exactly as a dropped preference row in training.

  Context: raw (tables and role columns), content / pref (features grouped by side and
  aggregate), sides (the towers whose features are wanted).
  Parameters: %(pref_from)s, %(pref_to)s (event window), %(as_of_first)s, %(as_of_last)s,
  and per feature %(ev_NAME)s, %(den_NAME)s, %(sep_NAME)s.
#}
{% import 'core/_macros.sql' as m %}

{% macro col(table, role) -%}
{{ raw.table(table).columns[role] | ident }}
{%- endmacro %}

{# -- the CTEs: emitted after the caller's `requests` CTE, each followed by a comma -- #}
{% macro ctes() %}
pref_events as (
    -- every event a preference feature may read: the longest window before the first as-of day
    select
        e.{{ col('events', 'user_id') }}::text as user_id,
        e.{{ col('events', 'item_id') }}::text as item_id,
        e.{{ col('events', 'event_type') }}::text as event_type,
        e.{{ col('events', 'event_time') }}::date as day
    from {{ m.raw_table(raw.events) }} as e
    where e.{{ col('events', 'event_time') }} >= %(pref_from)s
      and e.{{ col('events', 'event_time') }} < %(pref_to)s
      {% if by_id | default(false) %}
      -- items asked for by id (the stream worker): their statistics read their own events
      -- only, not every item's of the window (an index on the events' item id serves it)
      and e.{{ col('events', 'item_id') }}::text = any(%(item_ids)s)
      {% endif %}
),

as_of_days as (
    select d::date as as_of
    from generate_series(%(as_of_first)s::date, %(as_of_last)s::date, interval '1 day') as d
),
{% for side in sides %}
{% set p = pref[side] %}
{% if p.counts %}

{{ side }}_daily as (
    -- per {{ side }} and day: the event counts that count and rate features sum up
    select
        {{ side }}_id as id,
        day,
        {% for f in p.counts %}
        count(*) filter (where event_type = any(%(ev_{{ f.name }})s)) as {{ ('num_' ~ f.name) | ident }}{{ ',' if f.preference.agg == 'rate' or not loop.last }}
        {% if f.preference.agg == 'rate' %}
        count(*) filter (where event_type = any(%(den_{{ f.name }})s)) as {{ ('den_' ~ f.name) | ident }}{{ ',' if not loop.last }}
        {% endif %}
        {% endfor %}
    from pref_events
    group by 1, 2
),

{{ side }}_stats as (
    -- windowed sums as of each day; a {{ side }} with no event in the window has no row (cold)
    select
        a.as_of,
        d.id,
        {% for f in p.counts %}
        {% set in_window = "d.day >= a.as_of - " ~ f.preference.window_days %}
        {% if f.preference.agg == 'count' %}
        coalesce(sum(d.{{ ('num_' ~ f.name) | ident }}) filter (where {{ in_window }}), 0)::double precision
        {% else %}
        (sum(d.{{ ('num_' ~ f.name) | ident }}) filter (where {{ in_window }}))::double precision
            / nullif(sum(d.{{ ('den_' ~ f.name) | ident }}) filter (where {{ in_window }}), 0)
        {% endif %}
            as {{ f.name | ident }}{{ ',' if not loop.last }}
        {% endfor %}
    from as_of_days as a
    join {{ side }}_daily as d
      on d.day < a.as_of
     and d.day >= a.as_of - {{ p.max_window }}
    group by 1, 2
),
{% endif %}
{% for f in p.collects %}
{% set ctable, ccol = f.preference.collect.split('.') %}

{{ f.name }}_daily as (
    -- the distinct {{ f.preference.collect }} values a {{ side }} touched per day
    select
        pe.{{ side }}_id as id,
        pe.day,
        {% if ctable == 'authors' %}a.{% elif ctable == 'items' %}i.{% else %}u.{% endif %}{{ ccol | ident }}::text as value
    from pref_events as pe
    {% if ctable in ('items', 'authors') %}
    join {{ m.raw_table(raw.items) }} as i
      on i.{{ col('items', 'item_id') }}::text = pe.item_id
    {% endif %}
    {% if ctable == 'authors' %}
    join {{ m.raw_table(raw.authors) }} as a
      on a.{{ col('authors', 'author_id') }}::text = i.{{ col('items', 'author_id') }}::text
    {% endif %}
    {% if ctable == 'users' %}
    join {{ m.raw_table(raw.users) }} as u
      on u.{{ col('users', 'user_id') }}::text = pe.user_id
    {% endif %}
    where pe.event_type = any(%(ev_{{ f.name }})s)
    group by 1, 2, 3
),

{{ f.name }}_stats as (
    select
        a.as_of,
        d.id,
        string_agg(distinct d.value, %(sep_{{ f.name }})s order by d.value) as {{ f.name | ident }}
    from as_of_days as a
    join {{ f.name }}_daily as d
      on d.day < a.as_of
     and d.day >= a.as_of - {{ f.preference.window_days }}
    where d.value is not null
    group by 1, 2
),
{% endfor %}
{% endfor %}
{% endmacro %}

{# -- the feature columns of `requests r`, for the select list -- #}
{% macro columns() %}
{% for side in sides %}
{% for f in content[side] %}
        {{ m.content_value(f, {'users': 'u', 'items': 'i', 'authors': 'a', 'item_text': 't'}[f.source_table]) }} as {{ f.name | ident }},
{% endfor %}
{% for f in pref[side].counts %}
        {{ side }}_stats.{{ f.name | ident }},
{% endfor %}
{% for f in pref[side].collects %}
        {{ f.name }}_stats.{{ f.name | ident }},
{% endfor %}
{% endfor %}
{% endmacro %}

{# -- the joins that bring those columns to `requests r` -- #}
{% macro joins() %}
{% if 'user' in sides %}
    left join {{ m.raw_table(raw.users) }} as u
      on u.{{ col('users', 'user_id') }}::text = r.user_id
{% if pref.user.counts %}
    left join user_stats
      on user_stats.as_of = r.as_of and user_stats.id = r.user_id
{% endif %}
{% for f in pref.user.collects %}
    left join {{ f.name }}_stats
      on {{ f.name }}_stats.as_of = r.as_of and {{ f.name }}_stats.id = r.user_id
{% endfor %}
{% endif %}
{% if 'item' in sides %}
    left join {{ m.raw_table(raw.items) }} as i
      on i.{{ col('items', 'item_id') }}::text = r.item_id
    left join {{ m.raw_table(raw.authors) }} as a
      on a.{{ col('authors', 'author_id') }}::text = i.{{ col('items', 'author_id') }}::text
    left join {{ m.raw_table(raw.item_text) }} as t
      on t.{{ col('item_text', 'item_id') }}::text = r.item_id
{% if pref.item.counts %}
    left join item_stats
      on item_stats.as_of = r.as_of and item_stats.id = r.item_id
{% endif %}
{% for f in pref.item.collects %}
    left join {{ f.name }}_stats
      on {{ f.name }}_stats.as_of = r.as_of and {{ f.name }}_stats.id = r.item_id
{% endfor %}
{% endif %}
{% endmacro %}
