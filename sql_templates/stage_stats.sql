-- Row and positive counts of a filled staging table, for the task's report.
select count(*), sum({{ label | ident }})
from {{ qualified(schema, stage) }};
