-- One side's vectors of a version (the demo's small tables: read whole, ranked in numpy).
select {{ (side ~ '_id') | ident }}, embedding::real[]
from {{ qualified(schema, table) }}
where model_version = %(version)s;
