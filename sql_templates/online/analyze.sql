-- Refresh one served-log partition's statistics (online/stale_partitions.sql chose it).
analyze {{ qualified(schema, table) }};
