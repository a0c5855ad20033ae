-- One user's embedding in one model version.
select embedding
from {{ qualified(schema, 'user_embeddings') }}
where model_version = %(model_version)s
  and user_id = %(user_id)s;
