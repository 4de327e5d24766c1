{#- One row per input source: every input row is either clean or rejected (quarantined in
    data_quality_issues), and clean customer records are either in the grain or dropped by it.
    input_rows counts the input rows (staging for the customers, and for the transactions of a full load;
    with stored transactions every stored row of every file loaded, see int_transactions_checked),
    clean_rows the clean view, rejected_rows the quarantined rows of data_quality_issues: three
    independent counts, so a row lost or counted twice shows. -#}

with

customers_input as (

    select count(*) as input_rows from {{ ref('stg_customers') }}

),

customers_clean as (

    select count(*) as clean_rows from {{ ref('int_customers_validated') }}

),

transactions_input as (

    {#- every stored row of every file loaded; with a full load (no stored rows) the staged file -#}
    select count(*) as input_rows
    {%- if segfit_checked_materialization() == 'view' %}
        from {{ ref('stg_transactions') }}
    {%- else %}
        from {{ ref('int_transactions_checked') }}
    {%- endif %}

),

transactions_clean as (

    select count(*) as clean_rows from {{ ref('int_transactions_validated') }}

),

issues as (

    select
        source,
        source_row_number
    from {{ ref('data_quality_issues') }}
    where severity = 'rejected'

),

fit as (

    select count(*) as records_in_grain from {{ ref('customer_segment_fit') }}

),

counts as (

    select
        'customers' as source,
        customers_input.input_rows,
        customers_clean.clean_rows
    from customers_input
    cross join customers_clean
    union all
    select
        'transactions' as source,
        transactions_input.input_rows,
        transactions_clean.clean_rows
    from transactions_input
    cross join transactions_clean

),

quarantined as (

    select
        source,
        count(distinct source_row_number) as rejected_rows
    from issues
    group by source

),

final as (

    select
        cast(counts.source as {{ segfit_text() }}) as source,
        cast(counts.input_rows as {{ dbt.type_bigint() }}) as input_rows,
        cast(coalesce(counts.clean_rows, 0) as {{ dbt.type_bigint() }}) as clean_rows,
        cast(coalesce(quarantined.rejected_rows, 0) as {{ dbt.type_bigint() }}) as rejected_rows,
        cast(case when counts.source = 'customers' then fit.records_in_grain end as {{ dbt.type_bigint() }})
            as records_in_grain,
        cast(
            case when counts.source = 'customers' then coalesce(counts.clean_rows, 0) - fit.records_in_grain end
            as {{ dbt.type_bigint() }}
        ) as dropped_by_grain,
        counts.input_rows = coalesce(counts.clean_rows, 0) + coalesce(quarantined.rejected_rows, 0)
            as is_reconciled
    from counts
    left join quarantined
        on counts.source = quarantined.source
    cross join fit

)

select * from final
