-- The stored metrics of one bizdate.
select metrics
from {{ qualified(schema, 'metrics') }}
where dt = %(bizdate)s::date;
