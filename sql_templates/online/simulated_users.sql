-- The users the traffic simulator plays: a seeded sample of the users the active version
-- embedded (those recall can answer), in a stable pseudo-random order.
select u.user_id
from {{ qualified(schema, 'user_embeddings') }} as u
where u.model_version = %(model_version)s
order by md5(u.user_id || %(seed)s)
limit %(users)s;
