{#
  Timestamps. The tap emits UTC. target-duckdb stores them as naive UTC `TIMESTAMP`s;
  target-postgres as `timestamp without time zone` in its session's time zone, so the models
  turn them back into instants (`timestamptz`) in the same time zone: dbt must connect with
  the time zone target-postgres used (the same role, or the server's default).
#}

{% macro botpenguin_timestamp(expr) %}
  {{ return(adapter.dispatch('botpenguin_timestamp', 'botpenguin')(expr)) }}
{% endmacro %}
{% macro default__botpenguin_timestamp(expr) %}cast({{ expr }} as timestamptz){% endmacro %}
{% macro duckdb__botpenguin_timestamp(expr) %}cast({{ expr }} as timestamp){% endmacro %}
{% macro snowflake__botpenguin_timestamp(expr) %}cast({{ expr }} as timestamp_ntz){% endmacro %}


{% macro botpenguin_parse_timestamp(text) %}
  {#- An ISO 8601 string with its offset (`2026-06-01T10:00:00.123Z`), as `botpenguin_timestamp`. -#}
  {{ return(adapter.dispatch('botpenguin_parse_timestamp', 'botpenguin')(text)) }}
{% endmacro %}
{% macro default__botpenguin_parse_timestamp(text) %}cast({{ text }} as timestamptz){% endmacro %}
{% macro duckdb__botpenguin_parse_timestamp(text) %}timezone('UTC', cast({{ text }} as timestamptz)){% endmacro %}
{% macro snowflake__botpenguin_parse_timestamp(text) %}convert_timezone('UTC', try_to_timestamp_tz({{ text }}))::timestamp_ntz{% endmacro %}


{% macro botpenguin_utc_date(expr) %}
  {{ return(adapter.dispatch('botpenguin_utc_date', 'botpenguin')(expr)) }}
{% endmacro %}
{% macro default__botpenguin_utc_date(expr) %}cast(({{ expr }}) at time zone 'UTC' as date){% endmacro %}
{% macro duckdb__botpenguin_utc_date(expr) %}cast({{ expr }} as date){% endmacro %}
{% macro snowflake__botpenguin_utc_date(expr) %}cast({{ expr }} as date){% endmacro %}


{#
  Undocumented fields arrive typed as the tap learned them (`boolean`, `numeric`/`DOUBLE`,
  `text`, `jsonb`/`JSON`, PostgreSQL arrays of jsonb, Snowflake VARIANT/ARRAY), or as JSON
  inside `undocumentedFields`, or as text when their values had mixed types. `botpenguin_as`
  turns any of these into one type, so every mode builds the same columns, and a value that
  does not fit becomes null rather than failing the build.
#}

{% macro botpenguin_as(expr, dtype, kind) %}
  {#- `expr`, of warehouse type `dtype` ('json' for a JSON value, 'null' for no value), as
      `kind`: text, boolean, number or json. -#}
  {%- set family = botpenguin_type_family(dtype) -%}
  {%- if family == 'null' -%}
    {{ return('cast(null as ' ~ botpenguin_type(kind) ~ ')') }}
  {%- elif family == 'array' -%}
    {{ return(botpenguin_as(botpenguin_array_to_json(expr), 'json', kind)) }}
  {%- elif kind == 'json' and family == 'json' -%}
    {{ return(expr) }}
  {%- elif kind == 'json' and family == 'text' -%}
    {{ return(botpenguin_parse_json(expr)) }}
  {%- elif kind == 'json' -%}
    {{ return('cast(null as ' ~ botpenguin_type(kind) ~ ')') }}
  {%- elif kind == family -%}
    {{ return('cast(' ~ expr ~ ' as ' ~ botpenguin_type(kind) ~ ')') }}
  {%- endif -%}
  {%- set text = botpenguin_element_text(expr) if family == 'json' else 'cast(' ~ expr ~ ' as ' ~ dbt.type_string() ~ ')' -%}
  {%- if kind == 'boolean' -%}
    {{ return(botpenguin_text_to_boolean(text)) }}
  {%- elif kind == 'number' -%}
    {{ return(botpenguin_text_to_number(text)) }}
  {%- endif -%}
  {{ return(text) }}
{% endmacro %}


{% macro botpenguin_type_family(dtype) %}
  {#- null, json, array, boolean, number or text, from a column's data type (lower case). -#}
  {%- set dtype = dtype | lower -%}
  {%- if dtype in ('null', 'json', 'array') -%}
    {{ return(dtype) }}
  {%- elif 'json' in dtype or 'variant' in dtype or 'object' in dtype -%}
    {{ return('json') }}
  {%- elif dtype.startswith('_') or dtype.endswith('[]') or 'array' in dtype -%}
    {{ return('array') }}
  {%- elif 'bool' in dtype -%}
    {{ return('boolean') }}
  {%- elif 'char' in dtype or 'text' in dtype or 'string' in dtype -%}
    {{ return('text') }}
  {%- endif -%}
  {{ return('number') }}
{% endmacro %}


{% macro botpenguin_type(kind) %}
  {%- if kind == 'boolean' -%}{{ return(dbt.type_boolean()) }}
  {%- elif kind == 'number' -%}{{ return(dbt.type_float()) }}
  {%- elif kind == 'json' -%}{{ return(botpenguin_type_json()) }}
  {%- endif -%}
  {{ return(dbt.type_string()) }}
{% endmacro %}


{% macro botpenguin_text_to_boolean(text) -%}
  case lower({{ text }}) when 'true' then true when 'false' then false end
{%- endmacro %}


{% macro botpenguin_text_to_number(text) %}
  {{ return(adapter.dispatch('botpenguin_text_to_number', 'botpenguin')(text)) }}
{% endmacro %}
{% macro default__botpenguin_text_to_number(text) -%}
  case when {{ text }} ~ '^\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\s*$' then cast({{ text }} as {{ dbt.type_float() }}) end
{%- endmacro %}
{% macro duckdb__botpenguin_text_to_number(text) %}try_cast({{ text }} as double){% endmacro %}
{% macro snowflake__botpenguin_text_to_number(text) %}try_to_double({{ text }}){% endmacro %}


{% macro botpenguin_type_json() %}
  {{ return(adapter.dispatch('botpenguin_type_json', 'botpenguin')()) }}
{% endmacro %}
{% macro default__botpenguin_type_json() %}jsonb{% endmacro %}
{% macro duckdb__botpenguin_type_json() %}json{% endmacro %}
{% macro snowflake__botpenguin_type_json() %}variant{% endmacro %}


{% macro botpenguin_array_to_json(expr) %}
  {#- A warehouse array (target-postgres loads JSON arrays as `jsonb[]`) as one JSON array. -#}
  {{ return(adapter.dispatch('botpenguin_array_to_json', 'botpenguin')(expr)) }}
{% endmacro %}
{% macro default__botpenguin_array_to_json(expr) %}to_jsonb({{ expr }}){% endmacro %}
{% macro duckdb__botpenguin_array_to_json(expr) %}to_json({{ expr }}){% endmacro %}
{% macro snowflake__botpenguin_array_to_json(expr) %}to_variant({{ expr }}){% endmacro %}


{% macro botpenguin_parse_json(text) %}
  {#- JSON text (an array or object the tap turned into text) as JSON; null if it is not. -#}
  {{ return(adapter.dispatch('botpenguin_parse_json', 'botpenguin')(text)) }}
{% endmacro %}
{% macro default__botpenguin_parse_json(text) -%}
  case when left(trim({{ text }}), 1) in ('[', '{') then cast({{ text }} as jsonb) end
{%- endmacro %}
{% macro duckdb__botpenguin_parse_json(text) %}try_cast({{ text }} as json){% endmacro %}
{% macro snowflake__botpenguin_parse_json(text) %}try_parse_json({{ text }}){% endmacro %}


{% macro botpenguin_blank_to_null(text) -%}
  {#- Real records say "unknown" with an empty string (`"email": ""`): empty and blank are null. -#}
  case when trim(replace(replace(replace({{ text }}, chr(9), ' '), chr(10), ' '), chr(13), ' ')) = '' then null else {{ text }} end
{%- endmacro %}
