{% from 'online/_attribution.sql' import answers, attribution_ctes %}
-- Per version, arm, experiment, channel and user: lists served, and the user's positive
-- events that those lists had a chance to win (within online.attribution_hours after one of
-- them, or naming one of them by request id) with how many were credited to their items:
-- served recall, and its interval over users (dropoutnet/online/metrics.py).  An event is
-- identified by (user, item, time, its request id); each step below is one pass of joins on
-- the user or the response, never a comparison of every event with every list.
with {{ attribution_ctes(schema, events, has_request_id, experiment) }},

requests as (
    select model_version, arm, experiment_id, channel, user_id, count(*) as requests
    from lists
    group by 1, 2, 3, 4, 5
),

-- the events each group's lists had a chance to win: the event's own response when it
-- names one, else any list of the user in the window before it
in_window as (
    select distinct
        l.model_version, l.arm, l.experiment_id, l.channel,
        p.user_id, p.item_id, p.event_time, coalesce(p.request_id, '') as event_request_id
    from positives as p
    inner join lists as l
        on l.user_id = p.user_id
    where {{ answers('p', 'l') }}
),

-- the events credited to an item of one of the group's lists (_attribution.sql)
credited as (
    select distinct
        l.model_version, l.arm, l.experiment_id, l.channel,
        a.user_id, a.item_id, a.event_time, coalesce(a.event_request_id, '') as event_request_id
    from attributed as a
    inner join lists as l
        on l.request_id = a.request_id
       and l.served_at = a.served_at
),

per_user as (
    select
        w.model_version, w.arm, w.experiment_id, w.channel, w.user_id,
        count(*) as positives,
        count(c.user_id) as credited
    from in_window as w
    left join credited as c
        using (model_version, arm, experiment_id, channel, user_id, item_id, event_time,
               event_request_id)
    group by 1, 2, 3, 4, 5
)

select
    r.model_version, r.arm, r.experiment_id, r.channel, r.user_id, r.requests,
    coalesce(u.positives, 0) as positives,
    coalesce(u.credited, 0) as credited
from requests as r
left join per_user as u
    using (model_version, arm, experiment_id, channel, user_id);
