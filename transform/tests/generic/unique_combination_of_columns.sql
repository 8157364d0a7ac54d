{% test unique_combination_of_columns(model, combination_of_columns) %}
{#- No two rows share these columns' values (nulls count as equal). -#}
select {{ combination_of_columns | join(', ') }}, count(*) as duplicates
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1
{% endtest %}
