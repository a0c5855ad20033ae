-- A sample of the users embedded in both versions: the same users every time for the same
-- pair (ordered by a hash of the id, not at random), so a comparison can be repeated.
with

a as (
    select user_id
    from {{ qualified(schema, 'user_embeddings') }}
    where model_version = %(version_a)s
),

b as (
    select user_id
    from {{ qualified(schema, 'user_embeddings') }}
    where model_version = %(version_b)s
)

select a.user_id
from a
join b on b.user_id = a.user_id
order by md5(a.user_id), a.user_id
limit %(users)s;
