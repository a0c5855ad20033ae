-- The samples of one bizdate, split in one statement into two staging tables:
--   eval stage:  the bizdate's exposures that training must not see, each in one split:
--                cold_items  exposures of items created on the bizdate (every user);
--                cold_users  exposures of older items by users with no event before the
--                            bizdate (in the whole events table, not only the window);
--                warm_items  exposures of older items by a hashed share of the other users
--                            (evaluation.warm_holdout_share; stable for a bizdate);
--   train stage: every other (user, item, day) exposure in the train_days window ending at
--                the bizdate.
-- The label is the config's `selection` aggregate over the sample's events.  Features are
-- point-in-time (see _features.sql).
{% import '_features.sql' as features with context %}
{% import '_macros.sql' as m %}
with

window_events as (
    -- the raw events of the training window, all columns kept for the label selection
    select
        e.*,
        e.{{ features.col('events', 'user_id') }}::text as _dn_user_id,
        e.{{ features.col('events', 'item_id') }}::text as _dn_item_id,
        e.{{ features.col('events', 'event_time') }}::date as _dn_day
    from {{ m.raw_table(raw.events) }} as e
    where e.{{ features.col('events', 'event_time') }} >= %(window_start)s
      and e.{{ features.col('events', 'event_time') }} < %(window_end)s
),

requests as (
    -- one sample per user, item and day with at least one exposure event
    select
        _dn_day as as_of,
        _dn_user_id as user_id,
        _dn_item_id as item_id,
        ({{ selection }})::smallint as label
    from window_events
    group by _dn_day, _dn_user_id, _dn_item_id
    having bool_or({{ features.col('events', 'event_type') }}::text = any(%(exposure_events)s))
),
{{ features.ctes() }}

returning_users as (
    -- the bizdate's users with an event before the bizdate: everyone else is a cold user
    select distinct e.{{ features.col('events', 'user_id') }}::text as user_id
    from {{ m.raw_table(raw.events) }} as e
    where e.{{ features.col('events', 'event_time') }} < %(bizdate)s::date
      and e.{{ features.col('events', 'user_id') }}::text in (
          select user_id from requests where as_of = %(bizdate)s::date
      )
),

featured as (
    select
        %(bizdate)s::date as dt,
        r.as_of as sample_date,
        r.user_id,
        r.item_id,
        r.label,
{{ features.columns() }}
        coalesce(i.{{ features.col('items', 'create_time') }}::date = %(bizdate)s::date, false)
            as is_new_item,
        r.user_id not in (select user_id from returning_users) as is_cold_user,
        -- a uniform hash of (user, bizdate) in [0, 1): the same users on every rerun
        ('x' || left(md5(r.user_id || '/' || %(bizdate)s::text), 8))::bit(32)::bigint
            / 4294967296.0 < %(warm_holdout_share)s as is_holdout_user
    from requests as r
{{ features.joins() }}
),

split as (
    select
        featured.*,
        case
            when sample_date <> %(bizdate)s::date then null
            when is_new_item then 'cold_items'
            when is_cold_user then 'cold_users'
            when is_holdout_user then 'warm_items'
        end as eval_split
    from featured
),

eval_rows as (
    insert into {{ qualified(schema, eval_stage) }} (dt, split, sample_date, user_id, item_id, {{ label | ident }}{% for f in feature_list %}, {{ f.name | ident }}{% endfor %})
    select dt, eval_split, sample_date, user_id, item_id, label{% for f in feature_list %}, {{ f.name | ident }}{% endfor %}

    from split
    where eval_split is not null
    returning 1
)

insert into {{ qualified(schema, train_stage) }} (dt, sample_date, user_id, item_id, {{ label | ident }}{% for f in feature_list %}, {{ f.name | ident }}{% endfor %})
select dt, sample_date, user_id, item_id, label{% for f in feature_list %}, {{ f.name | ident }}{% endfor %}

from split
where eval_split is null
  and not is_new_item;
