-- Row and positive counts of a filled staging table, for the task's report: one row in
-- total (split null), or one row per eval split.
select
    {% if by_split %}split{% else %}null::text{% endif %} as split,
    count(*) as samples,
    sum({{ label | ident }}) as positives
from {{ qualified(schema, stage) }}
{% if by_split %}
group by split
order by split
{% endif %};
