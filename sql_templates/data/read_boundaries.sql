-- The bin edges the model of a bizdate is built with.
select feature, boundaries
from {{ qualified(schema, 'feature_boundaries') }}
where dt = %(bizdate)s::date;
