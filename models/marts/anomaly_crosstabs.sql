{#- One row per (dimension, dimension_value): anomaly and normal counts and the anomaly rate, for
    seasonal_preference, lifecycle_stage and profitability_segment. A missing value is '(missing)'. -#}
{%- set dimensions = ['seasonal_preference', 'lifecycle_stage', 'profitability_segment'] -%}

with

fit as (

    select * from {{ ref('customer_segment_fit') }}

),

long_values as (
    {%- for dimension in dimensions %}

        select
            '{{ dimension }}' as dimension,
            coalesce({{ dimension }}, '(missing)') as dimension_value,
            is_classification_anomaly
        from fit
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}

),

counted as (

    select
        dimension,
        dimension_value,
        sum(case when is_classification_anomaly then 1 else 0 end) as anomaly_count,
        sum(case when is_classification_anomaly then 0 else 1 end) as normal_count,
        count(*) as record_count
    from long_values
    group by dimension, dimension_value

),

final as (

    select
        cast(dimension as {{ segfit_text() }}) as dimension,
        cast(dimension_value as {{ segfit_text() }}) as dimension_value,
        cast(anomaly_count as {{ dbt.type_bigint() }}) as anomaly_count,
        cast(normal_count as {{ dbt.type_bigint() }}) as normal_count,
        cast(record_count as {{ dbt.type_bigint() }}) as record_count,
        cast({{ segfit_ratio('anomaly_count', 'record_count') }} as {{ segfit_double() }}) as anomaly_rate
    from counted

)

select * from final
