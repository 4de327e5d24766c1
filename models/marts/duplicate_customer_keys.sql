{#- One row per duplicated business key (customer_id, subsidiary_id) among clean customer records:
    how many records share it and whether they conflict (different segment or retention). -#}

with

customers as (

    select * from {{ ref('int_customers_validated') }}
    where not is_rejected

),

grouped as (

    select
        customer_id,
        subsidiary_id,
        count(*) as record_count,
        count(distinct profitability_segment) as distinct_segments,
        count(distinct retention_probability) as distinct_retention_values,
        count(distinct segmentation_date) as distinct_segmentation_dates,
        min(source_row_number) as first_source_row_number
    from customers
    group by customer_id, subsidiary_id
    having count(*) > 1

),

final as (

    select
        cast({{ segfit_surrogate_key(['customer_id', 'subsidiary_id']) }} as {{ segfit_text() }})
            as business_key_id,
        cast(customer_id as {{ segfit_text() }}) as customer_id,
        cast(subsidiary_id as {{ segfit_text() }}) as subsidiary_id,
        cast(record_count as {{ dbt.type_bigint() }}) as record_count,
        cast(distinct_segments as {{ dbt.type_bigint() }}) as distinct_segments,
        cast(distinct_retention_values as {{ dbt.type_bigint() }}) as distinct_retention_values,
        cast(distinct_segmentation_dates as {{ dbt.type_bigint() }}) as distinct_segmentation_dates,
        cast(first_source_row_number as {{ dbt.type_bigint() }}) as first_source_row_number,
        distinct_segments > 1 or distinct_retention_values > 1 as is_conflicting
    from grouped

)

select * from final
