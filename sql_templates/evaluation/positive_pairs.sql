-- The distinct (user, item) pairs with a positive sample in the bizdate's training partition:
-- the implicit feedback that the ridge -> factors baseline factorises (repeats count once).
with

training_samples as (
    -- the bizdate's training partition
    select
        s.user_id,
        s.item_id,
        s.{{ label | ident }} as label
    from {{ qualified(schema, 'samples') }} as s
    where s.dt = %(bizdate)s::date
)

select distinct
    user_id,
    item_id
from training_samples
where label > 0
order by user_id, item_id;
