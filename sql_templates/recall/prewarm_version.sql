-- A version's user and item partitions and every index of theirs (the HNSW graph above all)
-- read into shared buffers (pg_prewarm), so that the first recalls after publish or a
-- rollback find the graph's pages there instead of faulting them in one by one; the number
-- of blocks read.  The caller checks that the pg_prewarm extension is installed.
with

partitions as (
    select to_regclass(%(user_partition)s) as relid
    union all
    select to_regclass(%(item_partition)s)
),

relations as (
    select p.relid
    from partitions as p
    where p.relid is not null
    union all
    select i.indexrelid
    from pg_index as i
    join partitions as p
      on i.indrelid = p.relid
)

select coalesce(sum(pg_prewarm(r.relid)), 0)::bigint as blocks
from relations as r;
