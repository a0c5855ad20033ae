-- The stored online metrics of the model's bizdates in a range, oldest first.
select dt, model_version, arm, channel, experiment_id, metrics, computed_at
from {{ qualified(schema, 'online_metrics') }}
where model_name = %(model_name)s
  and dt between %(first_day)s and %(last_day)s
order by dt, model_version, arm, channel;
