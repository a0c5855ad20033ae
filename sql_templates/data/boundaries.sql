-- Quantile edges of each binned numeric feature over the bizdate's training samples, for the
-- model's in-graph binning.  Duplicate edges (heavy ties) collapse; NULLs are ignored (the
-- model gives missing values a bucket of their own).
insert into {{ qualified(schema, stage) }} (dt, feature, boundaries)
with

quantiles as (
{% for f in binned %}
    select
        %(name_{{ f.name }})s::text as feature,
        percentile_cont(%(quantiles)s::double precision[])
            within group (order by s.{{ f.name | ident }}) as edges
    from {{ qualified(schema, 'samples') }} as s
    where s.dt = %(bizdate)s::date
      and s.{{ f.name | ident }} is not null
{{ '    union all' if not loop.last }}
{% endfor %}
)

select
    %(bizdate)s::date as dt,
    feature,
    coalesce(array(select distinct x from unnest(edges) as x order by x), '{}') as boundaries
from quantiles;
