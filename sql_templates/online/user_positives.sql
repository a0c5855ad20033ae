{% from 'online/_attribution.sql' import attribution_ctes %}
-- Per version, arm, experiment, channel and user: lists served, and the user's positive
-- events that those lists had a chance to win (within online.attribution_hours after one of
-- them, or naming one of them by request id) with how many were credited to their items:
-- served recall, and its interval over users (dropoutnet/online/metrics.py).
with {{ attribution_ctes(schema, events, has_request_id, experiment) }},

requests as (
    select model_version, arm, experiment_id, channel, user_id, count(*) as requests
    from lists
    group by 1, 2, 3, 4, 5
),

in_window as (
    select distinct
        l.model_version, l.arm, l.experiment_id, l.channel,
        p.user_id, p.item_id, p.event_time, p.request_id
    from positives as p
    inner join lists as l
        on l.user_id = p.user_id
    -- the event's own response when it names one, else any list in the window before it
    where case
        when p.request_id is not null then l.request_id::text = lower(p.request_id)
        else l.served_at <= p.event_time
             and p.event_time < l.served_at + %(window)s::interval
    end
),

credited as (
    select distinct
        l.model_version, l.arm, l.experiment_id, l.channel,
        a.user_id, a.item_id, a.event_time
    from attributed as a
    inner join lists as l
        on l.request_id = a.request_id
       and l.served_at = a.served_at
)

select
    r.model_version, r.arm, r.experiment_id, r.channel, r.user_id, r.requests,
    -- (a row of nulls is a value to count(distinct ...): the left joins' misses are left out)
    count(distinct (w.item_id, w.event_time)) filter (where w.item_id is not null) as positives,
    count(distinct (c.item_id, c.event_time)) filter (where c.item_id is not null) as credited
from requests as r
left join in_window as w
    using (model_version, arm, experiment_id, channel, user_id)
left join credited as c
    on c.model_version = w.model_version
   and c.arm = w.arm
   and c.experiment_id = w.experiment_id
   and c.channel = w.channel
   and c.user_id = w.user_id
   and c.item_id = w.item_id
   and c.event_time = w.event_time
group by 1, 2, 3, 4, 5, 6;
