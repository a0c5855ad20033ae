-- Per-transaction HNSW settings for a top-N query.  An HNSW scan returns at most ef_search
-- rows, so ef_search is at least N.  A filtered scan (created within a window, a filter on
-- an item value, the user's own items left out) is iterative: it keeps scanning, in exact
-- distance order, until N rows pass the filter or max_scan_tuples index tuples were visited.
select
    set_config('hnsw.ef_search', %(ef_search)s::text, true),
    set_config('hnsw.iterative_scan', %(iterative_scan)s, true),
    set_config('hnsw.max_scan_tuples', %(max_scan_tuples)s::text, true);
