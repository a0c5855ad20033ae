-- The tables a publication already holds (no row: the publication does not exist).
select p.pubname, t.schemaname, t.tablename
from pg_publication as p
left join pg_publication_tables as t on t.pubname = p.pubname
where p.pubname = %(publication)s;
