-- Item embedding tables made before recall filters existed get the `attributes` column
-- (the filterable raw item values; '{}' for the rows already stored).  It recurses into
-- the attached partitions and is instant (a constant default rewrites nothing).
alter table {{ qualified(schema, 'item_embeddings') }}
    add column if not exists attributes jsonb not null default '{}'::jsonb;
