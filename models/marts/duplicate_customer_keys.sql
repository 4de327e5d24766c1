{#- One row per duplicated business key (customer_id, subsidiary_id) among clean customer records:
    how many records share it, over how many snapshots (segmentation dates), and whether records of
    the same snapshot conflict (different segment or retention). Different snapshots may differ. -#}

with

valid_records as (

    select
        source_row_number,
        customer_id,
        subsidiary_id,
        segmentation_date,
        profitability_segment,
        retention_probability
    from {{ ref('int_customers_validated') }}

),

repeated_keys as (

    {#- one cheap pass finds the few repeated keys; the distinct counts below only see their records #}
    select
        customer_id,
        subsidiary_id
    from valid_records
    group by customer_id, subsidiary_id
    having count(*) > 1

),

customers as (

    select valid_records.*
    from valid_records
    inner join repeated_keys
        on
            valid_records.customer_id = repeated_keys.customer_id
            and coalesce(valid_records.subsidiary_id, '') = coalesce(repeated_keys.subsidiary_id, '')

),

snapshots as (

    select
        customer_id,
        subsidiary_id,
        segmentation_date,
        case
            when count(distinct profitability_segment) > 1 or count(distinct retention_probability) > 1
                then 1
            else 0
        end as snapshot_conflicts
    from customers
    group by customer_id, subsidiary_id, segmentation_date

),

conflicts as (

    select
        customer_id,
        subsidiary_id,
        max(snapshot_conflicts) as has_conflicting_snapshot
    from snapshots
    group by customer_id, subsidiary_id

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
        cast({{ segfit_surrogate_key(['grouped.customer_id', 'grouped.subsidiary_id']) }} as {{ segfit_text() }})
            as business_key_id,
        cast(grouped.customer_id as {{ segfit_text() }}) as customer_id,
        cast(grouped.subsidiary_id as {{ segfit_text() }}) as subsidiary_id,
        cast(record_count as {{ dbt.type_bigint() }}) as record_count,
        cast(distinct_segments as {{ dbt.type_bigint() }}) as distinct_segments,
        cast(distinct_retention_values as {{ dbt.type_bigint() }}) as distinct_retention_values,
        cast(distinct_segmentation_dates as {{ dbt.type_bigint() }}) as distinct_segmentation_dates,
        cast(first_source_row_number as {{ dbt.type_bigint() }}) as first_source_row_number,
        coalesce(conflicts.has_conflicting_snapshot, 0) = 1 as is_conflicting
    from grouped
    left join conflicts
        on
            grouped.customer_id = conflicts.customer_id
            and coalesce(grouped.subsidiary_id, '') = coalesce(conflicts.subsidiary_id, '')

)

select * from final
