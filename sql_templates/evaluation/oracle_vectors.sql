-- Planted latent vectors (synthetic data): the oracle's user tastes or item latents.
select
    o.{{ id | ident }}::text as id,
    o.{{ vector | ident }} as vector,
    {% if bias %}o.{{ bias | ident }}{% else %}0.0{% endif %}::double precision as bias
from {{ table | ident }} as o
where o.{{ id | ident }}::text = any(%(ids)s);
