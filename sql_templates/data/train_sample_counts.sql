-- Size of a bizdate's sample partition (`samples`, the training one, unless told): its rows
-- and positives, for the metrics report and for training when nothing else needs a pass.
select count(*), count(*) filter (where {{ label | ident }} > 0.5)
from {{ qualified(schema, table | default('samples')) }}
where dt = %(bizdate)s::date;
