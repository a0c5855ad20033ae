-- Record that a DDL template's text was applied to this schema, in the transaction that
-- applied it (core/ddl/applied.sql reads it back).  Dropping the schema drops the ledger
-- with the tables it describes; deleting a row makes the next task apply that template again.
create table if not exists {{ qualified(schema, 'ddl_applied') }} (
    template text primary key,
    digest text not null,
    applied_at timestamptz not null default now()
);

insert into {{ qualified(schema, 'ddl_applied') }} as l (template, digest)
values (%(template)s, %(digest)s)
on conflict (template) do update
    set digest = excluded.digest,
        applied_at = now();
