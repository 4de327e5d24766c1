{#- Generic data tests (dbt_utils is unreachable here, so segfit carries the few it needs). -#}

{% test accepted_range(model, column_name, min_value=none, max_value=none) %}
select {{ column_name }}
from {{ model }}
where
    {{ column_name }} is not null
    and (
        1 = 0
        {%- if min_value is not none %} or {{ column_name }} < {{ min_value }}{% endif %}
        {%- if max_value is not none %} or {{ column_name }} > {{ max_value }}{% endif %}
    )
{% endtest %}

{% test expression_is_true(model, expression, where_clause=none) %}
select *
from {{ model }}
where
    not ({{ expression }})
    {%- if where_clause %} and ({{ where_clause }}){% endif %}
{% endtest %}

{% test unique_combination_of_columns(model, combination_of_columns) %}
select
    {{ combination_of_columns | join(', ') }},
    count(*) as records
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1
{% endtest %}

{#- rows whose share columns are all present must sum to 1 (within tolerance) -#}
{% test shares_sum_to_one(model, columns, tolerance=0.000001) %}
select *
from {{ model }}
where
    {%- for column in columns %}
    {{ column }} is not null and
    {%- endfor %}
    abs(({{ columns | join(' + ') }}) - 1) > {{ tolerance }}
{% endtest %}
