-- The embedded server's set-up of the application database, run as the superuser at every
-- start (idempotent): the only statements that need a superuser.  Everything else runs as
-- the pipeline role, which is no superuser, cannot create roles or databases, and owns the
-- application database (so it creates its schemas, and tables in `public`).  The advisory
-- lock makes processes that start at the same time take turns.
select pg_advisory_xact_lock(hashtext('dropoutnet embedded set-up'));

-- pgvector is not a trusted extension: only a superuser can create it
create extension if not exists vector;

-- nor is pg_prewarm: publish reads the new active version's index into shared buffers
create extension if not exists pg_prewarm;

do $$
begin
    create role {{ role | ident }} login nosuperuser nocreaterole nocreatedb;
exception when duplicate_object then
    null;  -- an earlier start created it
end
$$;

alter database {{ database | ident }} owner to {{ role | ident }};

-- the stream worker reads the item tables' change log through a logical replication slot
alter role {{ role | ident }} replication;
