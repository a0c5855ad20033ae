-- The top-N items of many users of one model version in one statement (evaluation): each
-- user's own vector drives its own HNSW scan (a lateral subquery ordered by `<#>`, as
-- retrieve.sql), so evaluating 100,000 users costs one round trip, not 200,000.  Items only
-- from the split's creation range (unless created_range is false: the console's overlap of
-- two versions' lists); hnsw.iterative_scan (retrieval_settings.sql) keeps each scan going
-- until N items pass it.  A user without a vector in the version has no row.
with users as (
    select
        user_id,
        embedding
    from {{ qualified(schema, user_table) }}
    where model_version = %(model_version)s
      and user_id = any(%(user_ids)s::text[])
)

select
    users.user_id,
    top.item_id
from users
cross join lateral (
    select
        items.item_id,
        items.embedding <#> users.embedding as distance
    from {{ qualified(schema, item_table) }} as items
    where items.model_version = %(model_version)s
      {% if created_range is not defined or created_range %}
      and items.created_at >= %(created_from)s
      and items.created_at < %(created_to)s
      {% endif %}
    order by items.embedding <#> users.embedding
    limit %(top_n)s
) as top
order by users.user_id, top.distance, top.item_id;
