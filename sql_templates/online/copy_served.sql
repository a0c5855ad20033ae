-- The served-log writer's batch of one day: binary COPY of buffered responses straight into
-- the day's partition of served_lists (made first by online/ddl/served_partition.sql), which
-- spares the parent's routing of every row.  The column order is
-- dropoutnet.online.served_log.COPY_TYPES'.
copy {{ qualified(schema, partition) }}
    (dt, request_id, served_at, source, user_id, model_version, arm, experiment_id, channel,
     filters, item_ids, scores)
from stdin (format binary)
