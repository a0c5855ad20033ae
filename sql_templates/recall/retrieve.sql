-- A user's top-N items of one model version by inner product (GetRetrieveSql in EasyRec's
-- DropoutNet recipe).
-- `<#>` is pgvector's negative inner product, so ascending order is descending score and the
-- HNSW index (vector_ip_ops, or halfvec_ip_ops) serves the scan.  `table` is the
-- item_embeddings parent, or a version's candidate (evaluate, before publish).
-- The user's vector is cast to the stored type (storage.vector_type), so the operator is
-- the index's: with halfvec, both sides are float16 and the product is summed in float32.
-- The filters sit inside the same query, so the HNSW scan applies them as it goes and, with
-- hnsw.iterative_scan (retrieval_settings.sql), keeps going until N items pass them: only
-- items created in a range, only items whose filterable values contain `attributes`
-- ({"column": "value", ...}), none of the `excluded` items (the user's own).
-- `exact` orders by the computed score instead of the operator, which the index cannot
-- serve: an exact scan of the items that pass the filters (the fallback when the HNSW scan
-- came back short, cheap exactly then: few items pass; see dropoutnet/recall/retrieval.py).
-- (`enable_indexscan = off` would not do: through the partitioned parent, PostgreSQL 18
-- still plans the disabled HNSW scan.)
{% set where %}
where model_version = %(model_version)s
{% if created_range %}
  and created_at >= %(created_from)s
  and created_at < %(created_to)s
{% endif %}
{% if filtered %}
  and attributes @> %(attributes)s::jsonb
{% endif %}
{% if excluding %}
  and item_id <> all(%(excluded)s::text[])
{% endif %}
{% endset %}
{% if relaxed | default(false) and not exact %}
-- `relaxed`: a filtered scan under hnsw.iterative_scan = relaxed_order may hand rows over
-- slightly out of distance order; the nearest N it found are then put in order here
with

nearest as materialized (
    select
        item_id,
        embedding <#> %(user_vector)s::{{ vector_sql_type(vector_type) }} as distance
    from {{ qualified(schema, table) }}
    {{ where }}
    order by distance
    limit %(top_n)s
)

select
    item_id,
    -distance as score
from nearest
order by distance, item_id;
{% else %}
select
    item_id,
    -(embedding <#> %(user_vector)s::{{ vector_sql_type(vector_type) }}) as score
from {{ qualified(schema, table) }}
{{ where }}
{% if exact %}
order by score desc, item_id
{% else %}
order by embedding <#> %(user_vector)s::{{ vector_sql_type(vector_type) }}
{% endif %}
limit %(top_n)s;
{% endif %}
