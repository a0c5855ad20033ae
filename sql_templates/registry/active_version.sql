-- The version the product serves, with its bizdate, run and towers (no row before the first
-- publish).
select a.model_version, v.bizdate, v.run_id, v.export_path, a.published_at
from {{ qualified(schema, 'active_version') }} as a
left join {{ qualified(schema, 'model_versions') }} as v
    on v.model_name = a.model_name
   and v.model_version = a.model_version
where a.model_name = %(model_name)s;
