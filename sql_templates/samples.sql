-- The samples of one bizdate, split in one statement into two staging tables:
--   train stage: every (user, item, day) exposure in the train_days window ending at the
--                bizdate, except those of items created on the bizdate;
--   eval stage:  the bizdate's exposures of items created on the bizdate (the cold items).
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

featured as (
    select
        %(bizdate)s::date as dt,
        r.as_of as sample_date,
        r.user_id,
        r.item_id,
        r.label,
{{ features.columns() }}
        coalesce(i.{{ features.col('items', 'create_time') }}::date = %(bizdate)s::date, false)
            as is_new_item
    from requests as r
{{ features.joins() }}
),

eval_rows as (
    insert into {{ qualified(schema, eval_stage) }} (dt, sample_date, user_id, item_id, {{ label | ident }}{% for f in feature_list %}, {{ f.name | ident }}{% endfor %})
    select dt, sample_date, user_id, item_id, label{% for f in feature_list %}, {{ f.name | ident }}{% endfor %}

    from featured
    where is_new_item and sample_date = %(bizdate)s::date
    returning 1
)

insert into {{ qualified(schema, train_stage) }} (dt, sample_date, user_id, item_id, {{ label | ident }}{% for f in feature_list %}, {{ f.name | ident }}{% endfor %})
select dt, sample_date, user_id, item_id, label{% for f in feature_list %}, {{ f.name | ident }}{% endfor %}

from featured
where not is_new_item;
