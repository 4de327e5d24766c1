{#- One row per classification-anomaly record, ranked by absolute deviation (largest first; ties go to
    customer_record_id). The deviation is stored rounded to 12 places (customer_segment_fit), so a
    last-bit difference between two equal deviations cannot reorder them on another engine. -#}

with

fit as (

    select * from {{ ref('customer_segment_fit') }}

),

anomalies as (

    select
        fit.*,
        cast(
            row_number() over (order by abs_retention_deviation desc, customer_record_id asc)
            as {{ dbt.type_bigint() }}
        ) as anomaly_rank
    from fit
    where is_classification_anomaly

),

final as (

    select anomalies.*
    from anomalies

)

select * from final
order by anomaly_rank
