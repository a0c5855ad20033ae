-- The model version the product serves (NULL row set when none was published yet).
select model_version, published_at
from {{ qualified(schema, 'active_version') }}
where model_name = %(model_name)s;
