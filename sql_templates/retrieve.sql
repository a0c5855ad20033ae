-- The seed's GetRetrieveSql: a user's top-N items of one model version by inner product.
-- `<#>` is pgvector's negative inner product, so ascending order is descending score and the
-- HNSW index (vector_ip_ops) serves the scan.  Optionally only items created in a range.
-- `table` is the item_embeddings parent, or a version's candidate (evaluate, before publish).
select
    item_id,
    -(embedding <#> %(user_vector)s) as score
from {{ qualified(schema, table) }}
where model_version = %(model_version)s
{% if created_range %}
  and created_at >= %(created_from)s
  and created_at < %(created_to)s
{% endif %}
order by embedding <#> %(user_vector)s
limit %(top_n)s;
