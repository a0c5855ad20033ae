-- How often each value of each categorical item-content feature (author, category, ...)
-- appears among the bizdate's positive training samples: the popularity baseline's counts.
{% for f in features %}
select
    %(name_{{ f.name }})s::text as feature,
    s.{{ f.name | ident }} as value,
    count(*) as positives
from {{ qualified(schema, 'samples') }} as s
where s.dt = %(bizdate)s::date
  and s.{{ label | ident }} > 0
  and s.{{ f.name | ident }} is not null
group by s.{{ f.name | ident }}
{{ 'union all' if not loop.last else ';' }}
{% endfor %}
