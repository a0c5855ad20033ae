-- The cold-start feature table's rows of a batch (execute_values fills the values list): one
-- row per item, replaced with the features it was last embedded from.
insert into {{ qualified(schema, 'stream_item_features') }}
    (model_name, item_id, created_at, features, updated_at)
values %s
on conflict (model_name, item_id) do update
set created_at = excluded.created_at,
    features = excluded.features,
    updated_at = excluded.updated_at;
