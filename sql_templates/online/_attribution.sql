{#
  The one definition of attribution, shared by the online metrics' statements
  (served_clicks.sql, user_positives.sql, new_items.sql).  For a period (a bizdate D: D's
  day; an experiment: from its start to its stop), optionally one experiment's lists only:

  * served: every item of every list served in the period (served_lists' partitions of its
    days), with its 1-based position;
  * positives: the events of the period (an experiment's: up to attribution_hours after
    its stop) whose type is one of online.positive_events;
  * attributed: each positive event credited to at most one served item, the same user's
    same item served before it:
      - an event carrying a request id (raw.events.columns.request_id; the UUID's text) is
        credited to that response only, whenever in the period it happened;
      - any other event to the latest serving of that item to that user at or before the
        event and less than online.attribution_hours before it (last touch);
    so an item served twice is credited once per click, to the later list; a click before
    the serving, after the window, or by another user is not credited.  A bizdate reads
    only its own events: a list served late on D has until midnight (every arm alike).
  Identical events (same user, item and time) count once.
#}
{% import 'core/_macros.sql' as m %}
{# Whether positive event `p` may answer served list (or item) `l`: the response it names, or
   any serving to the user at or before it within the window.  The caller joins on the user. #}
{% macro answers(p, l) -%}
case
        when {{ p }}.request_id is not null then {{ l }}.request_id::text = lower({{ p }}.request_id)
        else {{ l }}.served_at <= {{ p }}.event_time
             and {{ p }}.event_time < {{ l }}.served_at + %(window)s::interval
    end
{%- endmacro %}

{% macro attribution_ctes(schema, events, has_request_id, experiment) -%}
lists as (
    select
        s.request_id, s.served_at, s.user_id, s.model_version, s.arm,
        coalesce(s.experiment_id, 0) as experiment_id, s.channel, s.item_ids
    from {{ qualified(schema, 'served_lists') }} as s
    where s.dt between %(first_day)s and %(last_day)s
      and s.served_at >= %(served_from)s
      and s.served_at < %(served_to)s
      {% if experiment %}
      and s.experiment_id = %(experiment_id)s
      {% endif %}
),

served as (
    select
        l.request_id, l.served_at, l.user_id, l.model_version, l.arm, l.experiment_id,
        l.channel, i.item_id, i.position::int as position
    from lists as l
    cross join lateral unnest(l.item_ids) with ordinality as i (item_id, position)
),

positives as (
    select distinct
        e.{{ events.columns['user_id'] | ident }}::text as user_id,
        e.{{ events.columns['item_id'] | ident }}::text as item_id,
        e.{{ events.columns['event_time'] | ident }} as event_time,
        {% if has_request_id %}
        e.{{ events.columns['request_id'] | ident }}::text as request_id
        {% else %}
        null::text as request_id
        {% endif %}
    from {{ m.raw_table(events) }} as e
    where e.{{ events.columns['event_type'] | ident }} = any(%(positive_events)s)
      and e.{{ events.columns['event_time'] | ident }} >= %(served_from)s
      and e.{{ events.columns['event_time'] | ident }} < %(events_to)s
),

attributed as (
    select distinct on (p.user_id, p.item_id, p.event_time, p.request_id)
        p.user_id, p.item_id, p.event_time, p.request_id as event_request_id,
        s.request_id, s.served_at, s.position
    from positives as p
    inner join served as s
        on s.user_id = p.user_id
       and s.item_id = p.item_id
    where {{ answers('p', 's') }}
    order by p.user_id, p.item_id, p.event_time, p.request_id, s.served_at desc
),

-- a served item is clicked when at least one positive event was credited to it
clicked as (
    select
        request_id, served_at, position,
        min(event_time) as first_click,
        count(*) as positives
    from attributed
    group by request_id, served_at, position
)
{%- endmacro %}
