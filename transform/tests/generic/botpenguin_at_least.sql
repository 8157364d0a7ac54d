{% test botpenguin_at_least(model, column_name, minimum) %}
{#- No value below `minimum` (nulls pass: a field the API did not send). -#}
select {{ column_name }}
from {{ model }}
where {{ column_name }} < {{ minimum }}
{% endtest %}
