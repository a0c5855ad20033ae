-- One bizdate's partition of a sample table (with the eval split), in a stable order: by day,
-- user and item, or (shuffled) a fixed pseudo-random order that mixes days and users, so that
-- training's bounded shuffle buffer need not hold the whole day.  A training partition
-- (keyed) holds that order in shuffle_key, written in it and indexed by the samples step: the
-- read is an index scan front to back, no sort; other partitions sort by the same hash.
select
    {% if table == 'eval_samples' %}split,
    {% endif %}sample_date,
    user_id,
    item_id,
    {{ label | ident }}{% for f in features %},
    {{ f.name | ident }}{% endfor %}

from {{ qualified(schema, table) }}
where dt = %(bizdate)s::date
{% if shuffled and keyed %}
order by shuffle_key;
{% elif shuffled %}
order by md5(concat_ws('/', user_id, item_id, sample_date)), sample_date, user_id, item_id;
{% else %}
order by sample_date, user_id, item_id;
{% endif %}
