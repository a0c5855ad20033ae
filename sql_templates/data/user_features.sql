-- The user tower's input for every active user, as of the start of the bizdate (behaviour
-- up to the day before: the same view the bizdate's eval samples have).  Active: an event,
-- or a registration, within active_user_days ending at the bizdate.
{% import 'data/_features.sql' as features with context %}
{% import 'core/_macros.sql' as m %}
with

requests as (
    -- each active user once: the union (or distinct) removes duplicates where the planner
    -- can count them; a distinct over the subquery was estimated at 200 rows (no statistics
    -- there), which made every join below a loop of index probes: 1.3 s more at 1M users
    select
        %(bizdate)s::date as as_of,
        active.user_id,
        null::text as item_id
    from (
        select {{ '' if 'register_time' in raw.users.columns else 'distinct ' }}e.{{ features.col('events', 'user_id') }}::text as user_id
        from {{ m.raw_table(raw.events) }} as e
        where e.{{ features.col('events', 'event_time') }} >= %(active_from)s
          and e.{{ features.col('events', 'event_time') }} < %(active_to)s
{% if 'register_time' in raw.users.columns %}
        union
        select u.{{ features.col('users', 'user_id') }}::text
        from {{ m.raw_table(raw.users) }} as u
        where u.{{ features.col('users', 'register_time') }} >= %(active_from)s
          and u.{{ features.col('users', 'register_time') }} < %(active_to)s
{% endif %}
    ) as active
),
{{ features.ctes() }}

featured as (
    select
{{ features.columns() }}
        r.user_id
    from requests as r
{{ features.joins() }}
)

-- in no particular order (the readers match rows by user id): ordering a million wide rows
-- cost a sort, or join plans chosen for their order
select * from featured;
