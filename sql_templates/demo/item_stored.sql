-- Whether recall can read an item in a version's partition yet.
select count(*)
from {{ qualified(schema, 'item_embeddings') }}
where model_version = %(version)s
  and item_id = %(item_id)s;
