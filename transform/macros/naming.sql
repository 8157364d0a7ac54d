{#
  The tap's tables name columns one of two ways: as the API does (`updatedAt`; target-postgres
  keeps the case, target-duckdb folds it to `updatedat`, Snowflake to `UPDATEDAT`), or in
  snake_case with the tap's `snake_case_fields: true` (`updated_at`, and nested keys too:
  `profile.user_details`). The models find out from the table itself.
#}

{% macro botpenguin_naming(relation) %}
  {#- 'api' or 'snake', from the columns of `relation`; a clear error for anything else. -#}
  {%- if not execute -%}
    {{ return('api') }}
  {%- endif -%}
  {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
  {%- if 'updated_at' in names -%}
    {{ return('snake') }}
  {%- elif 'updatedat' in names -%}
    {{ return('api') }}
  {%- elif names | length == 0 -%}
    {{ exceptions.raise_compiler_error(
        "botpenguin: " ~ relation ~ " does not exist or has no columns. Load it first "
        ~ "(meltano run tap-botpenguin <target>); if the target loads into another schema than "
        ~ "`botpenguin`, give it to the dbt utility: meltano config set dbt-<adapter> "
        ~ "source_schema <schema> (DBT_BOTPENGUIN_SOURCE_SCHEMA when dbt runs alone).") }}
  {%- else -%}
    {{ exceptions.raise_compiler_error(
        "botpenguin: " ~ relation ~ " has neither an `updatedAt` nor an `updated_at` column, "
        ~ "so it is not a tap-botpenguin table (columns: " ~ names | join(', ') ~ ").") }}
  {%- endif -%}
{% endmacro %}


{% macro botpenguin_key(name, naming) %}
  {#- A field or nested key as the tap wrote it: `userDetails` or `user_details`. -#}
  {%- if naming == 'api' or name == '_id' -%}
    {{ return(name) }}
  {%- endif -%}
  {%- set stripped = name.lstrip('_') or name -%}
  {{ return(modules.re.sub('(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])', '_', stripped).lower()) }}
{% endmacro %}


{% macro botpenguin_column(name, naming) %}
  {{ return(adapter.dispatch('botpenguin_column', 'botpenguin')(botpenguin_key(name, naming))) }}
{% endmacro %}

{% macro default__botpenguin_column(key) %}
  {#- PostgreSQL keeps `"updatedAt"` case-sensitive; DuckDB matches quoted names either way. -#}
  {{ return(adapter.quote(key)) }}
{% endmacro %}

{% macro snowflake__botpenguin_column(key) %}
  {#- target-snowflake stores every name in upper case: unquoted names resolve to it. -#}
  {{ return(key) }}
{% endmacro %}


{% macro botpenguin_deleted_at(relation) %}
  {#- `_sdc_deleted_at` where the target writes it (target-postgres, a mirror), else null. -#}
  {%- if execute and '_sdc_deleted_at' in (adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list) -%}
    {{ return('_sdc_deleted_at') }}
  {%- endif -%}
  {{ return('null') }}
{% endmacro %}


{% macro botpenguin_columns(relation) %}
  {#- {lower-case name: data type, lower-case} of `relation`'s columns (empty when parsing). -#}
  {%- set found = {} -%}
  {%- if execute -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
      {%- do found.update({column.name | lower: column.dtype | lower}) -%}
    {%- endfor -%}
  {%- endif -%}
  {{ return(found) }}
{% endmacro %}


{% macro botpenguin_undocumented(columns, name, naming, kind) %}
  {#- A top-level field the field tables do not list (`platform`, `isPaid`, ...), as `kind`
      (text, boolean, number or json), wherever the tap put it: a column of its own
      (`undocumented_fields: evolve`), a key of the `undocumentedFields` column (`json`, or
      evolve for a name that cannot be a column), both (a table loaded in either mode over
      time: the column wins), or nowhere (`discard`, or an API that does not send it): null.
      `columns` is `botpenguin_columns(relation)`. -#}
  {%- set key = botpenguin_key(name, naming) -%}
  {%- set bag = botpenguin_key('undocumentedFields', naming) -%}
  {%- set found = [] -%}
  {%- if key | lower in columns and key | lower != bag | lower -%}
    {%- do found.append(botpenguin_as(botpenguin_column(name, naming), columns[key | lower], kind)) -%}
  {%- endif -%}
  {%- if bag | lower in columns -%}
    {%- do found.append(botpenguin_as(botpenguin_json_get(botpenguin_column('undocumentedFields', naming), [key]), 'json', kind)) -%}
  {%- endif -%}
  {%- if found | length == 0 -%}
    {{ return(botpenguin_as('null', 'null', kind)) }}
  {%- elif found | length == 1 -%}
    {{ return(found[0]) }}
  {%- endif -%}
  {{ return('coalesce(' ~ found | join(', ') ~ ')') }}
{% endmacro %}


{% macro botpenguin_source_schemas() %}
  {#- The schemas the tap loads: the var `botpenguin_schema` (in a project that uses this one as
      a package), else DBT_BOTPENGUIN_SOURCE_SCHEMA (the Meltano utilities' `source_schema`);
      a comma-separated list when shards load one schema each (docs/scaling.md). -#}
  {%- set value = var('botpenguin_schema', env_var('DBT_BOTPENGUIN_SOURCE_SCHEMA', 'botpenguin')) -%}
  {%- set names = value if value is not string else value.split(',') -%}
  {{ return(names | map('trim') | reject('equalto', '') | list) }}
{% endmacro %}


{% macro botpenguin_source_relations(table) %}
  {#- `table` in each source schema. With several schemas, those where it does not exist yet
      (a new shard whose bots have no leads yet) are left out; if none has it, the first
      stays, for the error that says what to do. -#}
  {%- set source_relation = source('botpenguin', table) -%}
  {%- set schemas = botpenguin_source_schemas() -%}
  {%- if schemas | length <= 1 -%}
    {{ return([source_relation]) }}
  {%- endif -%}
  {%- set found = [] -%}
  {%- for schema in schemas -%}
    {%- set relation = adapter.get_relation(database=source_relation.database, schema=schema, identifier=source_relation.identifier) if execute else none -%}
    {%- if relation is not none -%}
      {%- do found.append(relation) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(found if found else [source_relation]) }}
{% endmacro %}
