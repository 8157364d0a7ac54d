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
