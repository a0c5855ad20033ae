-- Which of these items recall can read in a version's partition yet.
select item_id
from {{ qualified(schema, 'item_embeddings') }}
where model_version = %(version)s
  and item_id = any(%(item_ids)s);
