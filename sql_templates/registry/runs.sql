-- A model's training runs, newest first (of one bizdate when given).
select run_id, bizdate, pipeline_run, config_hash, status, warm_start_from, warm_start_run,
       decision, gate, started_at, finished_at
from {{ qualified(schema, 'runs') }}
where model_name = %(model_name)s
  {% if bizdate %}and bizdate = %(bizdate)s {% endif %}
order by started_at desc;
