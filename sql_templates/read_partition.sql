-- One bizdate's partition of a sample table (with the eval split), in a stable order.
select
    {% if table == 'eval_samples' %}split,
    {% endif %}sample_date,
    user_id,
    item_id,
    {{ label | ident }}{% for f in features %},
    {{ f.name | ident }}{% endfor %}

from {{ qualified(schema, table) }}
where dt = %(bizdate)s::date
order by sample_date, user_id, item_id;
