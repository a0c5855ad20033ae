-- One bizdate's partition of a sample table (with the eval split), in a stable order: by day,
-- user and item, or (shuffled) by a hash of the row's key, a fixed pseudo-random order that
-- mixes days and users, so that training's bounded shuffle buffer need not hold the whole day.
select
    {% if table == 'eval_samples' %}split,
    {% endif %}sample_date,
    user_id,
    item_id,
    {{ label | ident }}{% for f in features %},
    {{ f.name | ident }}{% endfor %}

from {{ qualified(schema, table) }}
where dt = %(bizdate)s::date
{% if shuffled %}
order by md5(concat_ws('/', user_id, item_id, sample_date)), sample_date, user_id, item_id;
{% else %}
order by sample_date, user_id, item_id;
{% endif %}
