-- The digest of the DDL template last applied to this schema (none if never): db.ensure_ddl
-- skips a template whose rendered text is unchanged, so that a task does not take the
-- ACCESS EXCLUSIVE locks of `alter table ... if not exists` on tables that recall reads
-- on every request.  Fails with undefined_table before the ledger exists.
select digest
from {{ qualified(schema, 'ddl_applied') }}
where template = %(template)s;
