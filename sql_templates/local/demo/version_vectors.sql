-- One side's vectors of a version (the demo's small tables: read whole, ranked in numpy);
-- items only if created since `created_from`, when given.
select {{ (side ~ '_id') | ident }}, embedding::real[]
from {{ qualified(schema, table) }}
where model_version = %(version)s
{% if created_from %}
  and created_at >= %(created_from)s
{% endif %}
;
