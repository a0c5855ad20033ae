-- The served log's partitions of the period whose statistics are missing or stale (more than
-- a tenth of their rows changed since the last analyse): online/analyze.sql refreshes them
-- before the metrics are computed, so that the planner sees their real size.
select s.relname
from pg_stat_user_tables as s
where s.schemaname = %(schema)s
  and s.relname = any(%(partitions)s)
  and (coalesce(s.last_analyze, s.last_autoanalyze) is null
       or s.n_mod_since_analyze > 0.1 * greatest(s.n_live_tup, 1));
