{% from 'online/_attribution.sql' import attribution_ctes %}
-- Per version, arm, experiment, channel, user and position (positions past max_position
-- pooled into max_position + 1): items served and items clicked, for CTR by position and
-- its interval over users (dropoutnet/online/metrics.py).  Attribution: _attribution.sql.
with {{ attribution_ctes(schema, events, has_request_id, experiment) }}

select
    s.model_version, s.arm, s.experiment_id, s.channel, s.user_id,
    least(s.position, %(max_position)s + 1) as position,
    count(*) as served,
    count(c.request_id) as clicked
from served as s
left join clicked as c
    on c.request_id = s.request_id
   and c.served_at = s.served_at
   and c.position = s.position
group by 1, 2, 3, 4, 5, 6;
