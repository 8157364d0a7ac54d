{#
  JSON access where the warehouses differ: `profile` and `lastMessage` are jsonb in
  PostgreSQL, JSON in DuckDB and VARIANT in Snowflake (the Snowflake variants are written to
  Snowflake's documentation, compiled offline, never run). `keys` are lists of keys, already named
  as the table names them (see `botpenguin_key`).
#}

{% macro botpenguin_json_text(expr, keys) %}
  {{ return(adapter.dispatch('botpenguin_json_text', 'botpenguin')(expr, keys)) }}
{% endmacro %}
{% macro default__botpenguin_json_text(expr, keys) %}({{ expr }} #>> '{ {{- keys | join(',') -}} }'){% endmacro %}
{% macro duckdb__botpenguin_json_text(expr, keys) %}json_extract_string({{ expr }}, '$.{{ keys | join('.') }}'){% endmacro %}
{% macro snowflake__botpenguin_json_text(expr, keys) %}{{ expr }}:{{ keys | join(':') }}::varchar{% endmacro %}


{% macro botpenguin_json_get(expr, keys) %}
  {{ return(adapter.dispatch('botpenguin_json_get', 'botpenguin')(expr, keys)) }}
{% endmacro %}
{% macro default__botpenguin_json_get(expr, keys) %}({{ expr }} #> '{ {{- keys | join(',') -}} }'){% endmacro %}
{% macro duckdb__botpenguin_json_get(expr, keys) %}json_extract({{ expr }}, '$.{{ keys | join('.') }}'){% endmacro %}
{% macro snowflake__botpenguin_json_get(expr, keys) %}{{ expr }}:{{ keys | join(':') }}{% endmacro %}


{% macro botpenguin_array_elements(relation, id_column, array_expr) %}
  {#- `select <id_column>, element, position` for each element of a JSON array column
      (no row when it is null or not an array); position counts from 1. -#}
  {{ return(adapter.dispatch('botpenguin_array_elements', 'botpenguin')(relation, id_column, array_expr)) }}
{% endmacro %}

{% macro default__botpenguin_array_elements(relation, id_column, array_expr) %}
  select source.{{ id_column }}, items.element, items.position
  from {{ relation }} as source
  cross join lateral jsonb_array_elements(
    case when jsonb_typeof({{ array_expr }}) = 'array' then {{ array_expr }} else '[]'::jsonb end
  ) with ordinality as items(element, position)
{% endmacro %}

{% macro duckdb__botpenguin_array_elements(relation, id_column, array_expr) %}
  select {{ id_column }}, unnest(elements) as element, generate_subscripts(elements, 1) as position
  from (
    select
      {{ id_column }},
      case
        when json_type({{ array_expr }}) = 'ARRAY' then json_extract({{ array_expr }}, '$[*]')
        else []::json[]
      end as elements
    from {{ relation }}
  )
{% endmacro %}

{% macro snowflake__botpenguin_array_elements(relation, id_column, array_expr) %}
  select source.{{ id_column }}, items.value as element, items.index + 1 as position
  from {{ relation }} as source,
    lateral flatten(input => case when is_array({{ array_expr }}) then {{ array_expr }} end) as items
{% endmacro %}


{% macro botpenguin_element_text(element, key=none) %}
  {#- An array element's text (a tag), or the text of one of its keys (a note's title). -#}
  {{ return(adapter.dispatch('botpenguin_element_text', 'botpenguin')(element, key)) }}
{% endmacro %}
{% macro default__botpenguin_element_text(element, key) %}{% if key %}({{ element }} ->> '{{ key }}'){% else %}({{ element }} #>> '{}'){% endif %}{% endmacro %}
{% macro duckdb__botpenguin_element_text(element, key) %}json_extract_string({{ element }}, '$' {%- if key %} || '.{{ key }}'{% endif %}){% endmacro %}
{% macro snowflake__botpenguin_element_text(element, key) %}{{ element }}{% if key %}:{{ key }}{% endif %}::varchar{% endmacro %}


{% macro botpenguin_element_type(element, key) %}
  {#- The JSON type of an element's key: string, number, boolean, null, object or array. -#}
  {{ return(adapter.dispatch('botpenguin_element_type', 'botpenguin')(element, key)) }}
{% endmacro %}
{% macro default__botpenguin_element_type(element, key) %}jsonb_typeof({{ element }} -> '{{ key }}'){% endmacro %}
{% macro duckdb__botpenguin_element_type(element, key) -%}
  case json_type({{ element }}, '$.{{ key }}')
    when 'VARCHAR' then 'string'
    when 'BIGINT' then 'number'
    when 'UBIGINT' then 'number'
    when 'HUGEINT' then 'number'
    when 'DOUBLE' then 'number'
    when 'BOOLEAN' then 'boolean'
    when 'NULL' then 'null'
    when 'OBJECT' then 'object'
    when 'ARRAY' then 'array'
  end
{%- endmacro %}
{% macro snowflake__botpenguin_element_type(element, key) -%}
  case typeof({{ element }}:{{ key }})
    when 'VARCHAR' then 'string'
    when 'INTEGER' then 'number'
    when 'DECIMAL' then 'number'
    when 'DOUBLE' then 'number'
    when 'BOOLEAN' then 'boolean'
    when 'NULL_VALUE' then 'null'
    when 'OBJECT' then 'object'
    when 'ARRAY' then 'array'
  end
{%- endmacro %}


{% macro botpenguin_json_item_text(expr, which) %}
  {#- The text of the first or last element (`which`) of a JSON array; null if not an array. -#}
  {{ return(adapter.dispatch('botpenguin_json_item_text', 'botpenguin')(expr, which)) }}
{% endmacro %}
{% macro default__botpenguin_json_item_text(expr, which) -%}
  case when jsonb_typeof({{ expr }}) = 'array' then {{ expr }} ->> {{ 0 if which == 'first' else -1 }} end
{%- endmacro %}
{% macro duckdb__botpenguin_json_item_text(expr, which) -%}
  case when json_type({{ expr }}) = 'ARRAY' then json_extract_string({{ expr }}, '$[{{ 0 if which == 'first' else '#-1' }}]') end
{%- endmacro %}
{% macro snowflake__botpenguin_json_item_text(expr, which) -%}
  case when is_array({{ expr }}) then {{ expr }}[{{ 0 if which == 'first' else 'array_size(' ~ expr ~ ') - 1' }}]::varchar end
{%- endmacro %}
