{#- One row per classification-anomaly record, ranked by absolute deviation (largest first; rounded to 10
    places like the flag, so a last-bit difference between two equal deviations cannot reorder them: ties
    go to customer_record_id on every engine). -#}

with

fit as (

    select * from {{ ref('customer_segment_fit') }}

),

anomalies as (

    select
        fit.*,
        cast(
            row_number() over (order by round(abs_retention_deviation, 10) desc, customer_record_id asc)
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
