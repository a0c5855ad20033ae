-- The items of the bizdate's training samples, each with its content features (as the samples
-- store them), its number of positive samples and its exposure (the days of the training
-- window it existed): what the content regressions learn from (content -> popularity,
-- content -> preference factors).  An item that was only ever exposed counts 0 positives:
-- being ignored is part of what popularity means.
{% import 'core/_macros.sql' as m %}
with

training_samples as (
    -- the bizdate's training partition
    select
        s.item_id,
        s.sample_date,
        s.{{ label | ident }} as label{% for f in features %},
        s.{{ f.name | ident }}{% endfor %}

    from {{ qualified(schema, 'samples') }} as s
    where s.dt = %(bizdate)s::date
),

item_created as (
    -- when each item was created (the raw items table)
    select
        i.{{ items.columns['item_id'] | ident }}::text as item_id,
        i.{{ items.columns['create_time'] | ident }}::date as created
    from {{ m.raw_table(items) }} as i
),

item_positives as (
    -- per item: its positive samples (one per user and day)
    select
        item_id,
        count(*) filter (where label > 0) as positives
    from training_samples
    group by item_id
),

item_content as (
    -- per item: its content, from its latest sample (content is set when the item is created)
    select distinct on (item_id)
        item_id{% for f in features %},
        {{ f.name | ident }}{% endfor %}

    from training_samples
    order by item_id, sample_date desc
)

select
    c.*,
    p.positives,
    -- days from the later of its creation and the window's start to the bizdate, inclusive
    (%(bizdate)s::date - greatest(r.created, %(window_start)s::date) + 1)::double precision
        as exposure_days
from item_content as c
join item_positives as p
  on p.item_id = c.item_id
left join item_created as r
  on r.item_id = c.item_id
order by c.item_id;
