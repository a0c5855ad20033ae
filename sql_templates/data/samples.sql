-- The samples of one bizdate, split in one statement into two staging tables:
--   eval stage:  the bizdate's exposures that training must not see, each in one split:
--                cold_items  exposures of items created on the bizdate by returning users;
--                cold_both   exposures of items created on the bizdate by cold users (both
--                            towers see content only: the hardest case, kept apart so that
--                            it does not blur the cold-item figures);
--                cold_users  exposures of older items by users with no event before the
--                            bizdate (in the whole events table, not only the window);
--                warm_items  exposures of older items by a hashed share of the other users
--                            (evaluation.warm_holdout_share; stable for a bizdate);
--   train stage: every other (user, item, day) exposure in the train_days window ending at
--                the bizdate, and with samples.sampled_negatives, label-0 samples of items
--                the user did not touch on days before the bizdate (see `sampled_negatives`).
-- The label is the config's `selection` aggregate over the sample's events: SQL text from the
-- config, which is trusted code (see the sql_fragment filter in sql.py).  Features are
-- point-in-time (see _features.sql).
{% import 'data/_features.sql' as features with context %}
{% import 'core/_macros.sql' as m %}
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

exposures as (
    -- one sample per user, item and day with at least one exposure event
    select
        _dn_day as as_of,
        _dn_user_id as user_id,
        _dn_item_id as item_id,
        ({{ selection | sql_fragment }})::smallint as label
    from window_events
    group by _dn_day, _dn_user_id, _dn_item_id
    having bool_or({{ features.col('events', 'event_type') }}::text = any(%(exposure_events)s))
),
{% if sampled_negatives %}

-- Sampled negatives (samples.sampled_negatives): label-0 samples of items the user did not
-- touch, so that training also learns which items get watched at all, not only which of the
-- exposed items get clicked.  Uniform over the items that existed that day; deterministic
-- (hashes, no random()), so a rerun of the bizdate writes the same rows.

negative_pool as (
    -- the items that can be drawn, numbered by creation time: the items that existed by the
    -- end of a day are the prefix 1 .. n of the numbering.  The bizdate's new items are the
    -- cold items: never in training, so never drawn
    select
        i.{{ features.col('items', 'item_id') }}::text as item_id,
        i.{{ features.col('items', 'create_time') }} as created,
        row_number() over (order by i.{{ features.col('items', 'create_time') }},
                                    i.{{ features.col('items', 'item_id') }}::text) as pos
    from {{ m.raw_table(raw.items) }} as i
    where i.{{ features.col('items', 'create_time') }} < %(bizdate)s::date
),

negative_user_days as (
    -- the (user, day) pairs that get negatives, with the size n of that day's pool; not the
    -- bizdate: its rows may be held out for evaluation, which must hold real exposures only
    select d.as_of, d.user_id, s.n_items
    from (select distinct as_of, user_id from exposures where as_of < %(bizdate)s::date) as d
    join (
        select days.as_of, count(*) as n_items
        from (select distinct as_of from exposures) as days
        join negative_pool as p
          on p.created < days.as_of + 1
        group by days.as_of
    ) as s
      on s.as_of = d.as_of
),

negative_draws as (
    -- 2N + 10 draws per (user, day), with replacement: pool position = 1 + a 60-bit md5 of
    -- (seed, user, day, draw number) modulo the pool size
    select
        d.as_of,
        d.user_id,
        k as draw,
        1 + mod(('x' || left(md5(%(neg_seed)s::text || '/' || d.user_id || '/'
                                 || d.as_of::text || '/' || k::text), 15))::bit(60)::bigint,
                d.n_items) as pos
    from negative_user_days as d
    cross join generate_series(1, 2 * %(neg_per_user_day)s + 10) as k
),

sampled_negatives as (
    -- per (user, day): the first N distinct drawn items the user had no event with that day
    select as_of, user_id, item_id, 0::smallint as label
    from (
        select
            d.as_of,
            d.user_id,
            p.item_id,
            row_number() over (partition by d.as_of, d.user_id order by min(d.draw)) as n
        from negative_draws as d
        join negative_pool as p
          on p.pos = d.pos
        where not exists (
            select 1
            from window_events as e
            where e._dn_user_id = d.user_id
              and e._dn_day = d.as_of
              and e._dn_item_id = p.item_id
        )
        group by d.as_of, d.user_id, p.item_id
    ) as drawn
    where n <= %(neg_per_user_day)s
),
{% endif %}

requests as (
    -- the samples: the exposures{{ ' and the sampled negatives' if sampled_negatives }}
    select as_of, user_id, item_id, label from exposures
{% if sampled_negatives %}
    union all
    select as_of, user_id, item_id, label from sampled_negatives
{% endif %}
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
            when is_new_item and is_cold_user then 'cold_both'
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

-- the training rows, numbered in a fixed pseudo-random order (a hash of the row's key, ties by
-- the key) and written in that order: training reads them by that number through an index
-- (samples_read_order.sql) in the table's physical order, without a sort per epoch; the
-- order mixes days and users, so that training's bounded shuffle buffer need not hold the day
insert into {{ qualified(schema, train_stage) }} (dt, sample_date, user_id, item_id, {{ label | ident }}{% for f in feature_list %}, {{ f.name | ident }}{% endfor %}, shuffle_key)
select dt, sample_date, user_id, item_id, label{% for f in feature_list %}, {{ f.name | ident }}{% endfor %},
    row_number() over (
        order by md5(concat_ws('/', user_id, item_id, sample_date)), sample_date, user_id, item_id
    ) as shuffle_key
from split
where eval_split is null
  and not is_new_item
order by shuffle_key;
