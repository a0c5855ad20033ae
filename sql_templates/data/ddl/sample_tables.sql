-- The derived tables of the sample step, one partition per bizdate (dt).
--   samples          training samples over train_days ending at dt (cold items of dt excluded)
--   eval_samples     samples of dt held out of training, by split: cold_items (the item is
--                    new on dt, the user is not), cold_both (both are), cold_users (the user
--                    has no event before dt), warm_items (a hashed share of the other
--                    users); see samples.sql
--   feature_boundaries  quantile edges of each binned numeric feature, from dt's samples
-- Feature columns follow the config; a feature added later is added as a column.
{% import 'core/_macros.sql' as m %}
create schema if not exists {{ schema | ident }};

{% for table in ['samples', 'eval_samples'] %}
create table if not exists {{ qualified(schema, table) }} (
    dt date not null,
    sample_date date not null,
    user_id text not null,
    item_id text not null,
    {{ label | ident }} smallint not null
) partition by list (dt);
{% for f in feature_list %}
alter table {{ qualified(schema, table) }}
    add column if not exists {{ f.name | ident }} {{ m.feature_type(f) }};
{% endfor %}
{% endfor %}

-- a training row's place in the order training reads it (samples.sql numbers the rows by a
-- hash of their key once, and samples_read_order.sql indexes it), so that the reads need no
-- sort; partitions written before it have none and are read in the same order by sorting
alter table {{ qualified(schema, 'samples') }}
    add column if not exists shuffle_key bigint;

-- the eval split; partitions written before splits existed hold only cold items
alter table {{ qualified(schema, 'eval_samples') }}
    add column if not exists split text not null default 'cold_items';

create table if not exists {{ qualified(schema, 'feature_boundaries') }} (
    dt date not null,
    feature text not null,
    boundaries double precision[] not null
) partition by list (dt);
