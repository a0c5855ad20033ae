-- Whether any item of one model version has the given filterable values ({"column":
-- "value"}): a recall filter on a value no item has is refused with a message instead of
-- returning nothing.  The version partition's GIN index on `attributes`
-- (item_filter_indexes.sql) answers it without scanning the items.
select exists (
    select 1
    from {{ qualified(schema, 'item_embeddings') }}
    where model_version = %(model_version)s
      and attributes @> %(attributes)s::jsonb
);
