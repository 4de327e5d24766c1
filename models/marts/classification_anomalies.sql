{#- One row per classification-anomaly record, ranked by absolute deviation (largest first; ties by
    customer_record_id). The deviation is rounded to 10 decimals for the rank, as for the anomaly flag: a
    segment average is a float sum whose last bit depends on the order the rows are added in, so two
    records with the same retention would otherwise swap ranks between two builds of the same data
    (a full and an incremental one, for instance). -#}

with

fit as (

    select * from {{ ref('customer_segment_fit') }}

),

anomalies as (

    select
        fit.*,
        row_number() over (order by round(abs_retention_deviation, 10) desc, customer_record_id asc) as anomaly_rank
    from fit
    where is_classification_anomaly

),

final as (

    select anomalies.*
    from anomalies

)

select * from final
order by anomaly_rank
