-- The content-kNN baseline's user profile: the mean content vector of the items a user
-- clicked in the bizdate's training samples (pgvector's avg over vectors).
select
    s.user_id,
    avg(s.{{ feature | ident }}) as profile
from {{ qualified(schema, 'samples') }} as s
where s.dt = %(bizdate)s::date
  and s.{{ label | ident }} > 0
  and s.{{ feature | ident }} is not null
  and s.user_id = any(%(user_ids)s)
group by s.user_id;
