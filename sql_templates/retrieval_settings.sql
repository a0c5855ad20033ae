-- Per-transaction HNSW settings for a top-N query: an HNSW scan returns at most ef_search
-- rows, so ef_search is raised to at least N; a filtered scan (new items only) keeps
-- scanning until N rows pass the filter.
select
    set_config('hnsw.ef_search', %(ef_search)s::text, true),
    set_config('hnsw.iterative_scan', %(iterative_scan)s, true);
