-- Whether the pg_prewarm extension is installed in this database (an optional extension: a
-- server without it serves recalls all the same, the first ones slower).
select exists (select 1 from pg_extension where extname = 'pg_prewarm');
