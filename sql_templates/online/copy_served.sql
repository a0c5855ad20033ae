-- The served-log writer's batch: binary COPY of buffered responses (the column order is
-- dropoutnet.online.served_log.COLUMNS).
copy {{ qualified(schema, 'served_lists') }}
    (dt, request_id, served_at, source, user_id, model_version, arm, experiment_id, channel,
     filters, item_ids, scores)
from stdin (format binary)
