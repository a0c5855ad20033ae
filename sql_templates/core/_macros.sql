{# Shared macros for the pipeline's templates. #}

{# The SQL type a feature of each kind is stored as in the sample tables. #}
{% macro feature_type(f) -%}
{%- if f.kind == 'numeric' -%}double precision
{%- elif f.kind == 'vector' -%}vector({{ f.dim }})
{%- else -%}text
{%- endif -%}
{%- endmacro %}

{# A raw table, qualified by its schema when the config names one. #}
{% macro raw_table(t) -%}
{%- if t.schema_ -%}{{ qualified(t.schema_, t.table) }}{%- else -%}{{ t.table | ident }}{%- endif -%}
{%- endmacro %}

{# A content feature's value, read from its source table's alias, in its stored form:
   categorical as text, tags joined by the separator (raw tags are text[]), numbers as
   double precision, vectors as they are.  An `age` feature is the whole days from its
   timestamp to the request's as-of day (`r.as_of`), never negative: an item created on the
   as-of day (or later: a new item embedded in real time) is 0 days old. #}
{% macro content_value(f, alias) -%}
{%- set col = alias ~ '.' ~ (f.source_column | ident) -%}
{%- if f.kind == 'categorical' -%}{{ col }}::text
{%- elif f.kind == 'tags' -%}array_to_string({{ col }}, %(sep_{{ f.name }})s)
{%- elif f.kind == 'numeric' and f.age -%}greatest(r.as_of - {{ col }}::date, 0)::double precision
{%- elif f.kind == 'numeric' -%}{{ col }}::double precision
{%- else -%}{{ col }}
{%- endif -%}
{%- endmacro %}
