-- Give one schema or table of the superuser to the pipeline role (see superuser_objects.sql).
{% if table %}
alter table {{ qualified(schema, table) }} owner to {{ role | ident }};
{% else %}
alter schema {{ schema | ident }} owner to {{ role | ident }};
{% endif %}
