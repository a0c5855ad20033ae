-- One user's embedding in one model version (from the version's partition or candidate).
select embedding
from {{ qualified(schema, table) }}
where model_version = %(model_version)s
  and user_id = %(user_id)s;
