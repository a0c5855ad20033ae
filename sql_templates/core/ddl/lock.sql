-- Serialise DDL between concurrent tasks (user and item embeddings run in parallel): two
-- `create table if not exists` racing on the same name would otherwise fail.  Held until
-- the end of the caller's short DDL transaction.
select pg_advisory_xact_lock(hashtext('dropoutnet ddl'));
