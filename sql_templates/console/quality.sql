-- The stored metrics of every bizdate in a range, oldest first: the quality chart's points
-- (each bizdate's version scored on that day's held-out exposures) and its gate figures.
select dt as bizdate,
       model_version,
       metrics -> 'splits' as splits,
       metrics -> 'gate' as gate,
       metrics ->> 'run_id' as run_id
from {{ qualified(schema, 'metrics') }}
where dt >= %(date_from)s
  and dt <= %(date_to)s
order by dt;
