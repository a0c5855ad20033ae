-- Size of the bizdate's training partition, for the metrics report.
select count(*), coalesce(sum({{ label | ident }}), 0)
from {{ qualified(schema, 'samples') }}
where dt = %(bizdate)s::date;
