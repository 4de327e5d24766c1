{#- One row per profitability_segment: size, average retention and its anomalies. -#}

with

fit as (

    select * from {{ ref('customer_segment_fit') }}

),

per_segment as (

    select
        profitability_segment,
        count(*) as record_count,
        count(distinct customer_id) as distinct_customers,
        avg(retention_probability) as avg_retention,
        sum(case when is_classification_anomaly then 1 else 0 end) as anomaly_count,
        sum(case when is_classification_anomaly and deviation_direction = 'above' then 1 else 0 end)
            as above_count,
        sum(case when is_classification_anomaly and deviation_direction = 'below' then 1 else 0 end)
            as below_count
    from fit
    group by profitability_segment

),

with_totals as (

    select
        per_segment.*,
        sum(anomaly_count) over () as total_anomalies
    from per_segment

),

final as (

    select
        cast(profitability_segment as {{ segfit_text() }}) as profitability_segment,
        cast(record_count as {{ dbt.type_bigint() }}) as record_count,
        cast(distinct_customers as {{ dbt.type_bigint() }}) as distinct_customers,
        cast(avg_retention as {{ segfit_double() }}) as avg_retention,
        cast(anomaly_count as {{ dbt.type_bigint() }}) as anomaly_count,
        cast(above_count as {{ dbt.type_bigint() }}) as above_count,
        cast(below_count as {{ dbt.type_bigint() }}) as below_count,
        cast({{ segfit_ratio('anomaly_count', 'record_count') }} as {{ segfit_double() }}) as anomaly_rate,
        cast({{ segfit_ratio('anomaly_count', 'total_anomalies') }} as {{ segfit_double() }}) as anomaly_share
    from with_totals

)

select * from final
