{#- One row per customer record in the grain: its point-in-time transaction behaviour.
    A record uses only its customer's clean transactions dated on or before its as-of date
    (segmentation_date, or the latest clean transaction date in the data when that is missing).
    Customers with no transactions keep their row, with a count of 0. The heavy join and group-by use
    integer keys (the record's source_row_number, the month as year * 12 + month): grouping 20M rows by
    a text key costs twice as much. Distinct months are counted with a bit mask (see below).
    Incremental (var transactions_load = append): only the records the new transactions can change are
    recomputed (delete+insert on customer_record_id), each from all of its customer's stored clean
    transactions, so the point-in-time cut stays exact whatever the new rows' dates (a late file too):
    a record is recomputed when its customer has a clean transaction stored since the last computation
    (transactions_through_row) dated on or before the record's as-of date, or when its as-of date moved
    (a record without a segmentation_date is as of the latest transaction date), or when it is new. -#}
-- depends_on: {{ ref('int_transactions_checked') }}, {{ ref('stg_transactions') }}
{%- set append = segfit_transactions_append() -%}
{{ config(
    materialized=segfit_transactions_materialization(),
    unique_key='customer_record_id',
    incremental_strategy='delete+insert',
    full_refresh=(none if append else true),
    on_schema_change='fail',
) }}
{%- set incremental = is_incremental() %}

with

records as (

    select
        customer_record_id,
        source_row_number as record_key,
        customer_id,
        segmentation_date
    from {{ ref('int_customer_records_deduplicated') }}

),

transactions as (

    select
        customer_id,
        transaction_date,
        amount,
        profit
    from {{ ref('int_transactions_validated') }}

),

transaction_dates as (

    {#- its own import of the clean transactions: a CTE read twice is materialized (20M rows) #}
    select transaction_date
    from {{ ref('int_transactions_validated') }}

),

data_as_of as (

    select max(transaction_date) as max_transaction_date
    from transaction_dates

),

records_as_of as (

    select
        records.customer_record_id,
        records.record_key,
        records.customer_id,
        records.segmentation_date,
        coalesce(records.segmentation_date, data_as_of.max_transaction_date) as as_of_date
    from records
    cross join data_as_of

),

{# the last stored row this computation has seen (rejected rows included); with a full load (the checked
    rows are a view) the last staged row, without running the checks again #}
stored_transactions as (

    select max(source_row_number) as transactions_through_row
    {%- if segfit_checked_materialization() == 'view' %}
        from {{ ref('stg_transactions') }}
    {%- else %}
        from {{ ref('int_transactions_checked') }}
    {%- endif %}

),
{%- if incremental %}

    previous as (

        select
            customer_record_id,
            as_of_date
        from {{ this }}

    ),

    previous_through as (

        select coalesce(max(transactions_through_row), 0) as transactions_through_row
        from {{ this }}

    ),

    new_transactions as (

        select
            customer_id,
            transaction_date
        from {{ ref('int_transactions_validated') }}
        where source_row_number > (select previous_through.transactions_through_row from previous_through)

    ),

    customers_with_new_transactions as (

        select
            customer_id,
            min(transaction_date) as earliest_new_transaction_date
        from new_transactions
        group by customer_id

    ),

    records_to_compute as (

        select records_as_of.*
        from records_as_of
        left join previous
            on records_as_of.customer_record_id = previous.customer_record_id
        left join customers_with_new_transactions
            on records_as_of.customer_id = customers_with_new_transactions.customer_id
        where
            previous.customer_record_id is null
            or coalesce(
                previous.as_of_date <> records_as_of.as_of_date,
                previous.as_of_date is not null or records_as_of.as_of_date is not null
            )
            or customers_with_new_transactions.earliest_new_transaction_date <= records_as_of.as_of_date

    ),
{%- else %}

    records_to_compute as (

        select * from records_as_of

    ),
{%- endif %}

point_in_time as (

    select
        records_to_compute.record_key,
        transactions.transaction_date,
        transactions.amount,
        transactions.profit,
        {{ segfit_quarter('transactions.transaction_date') }} as transaction_quarter,
        {{ segfit_month_index('transactions.transaction_date') }} as transaction_month
    from records_to_compute
    inner join transactions
        on records_to_compute.customer_id = transactions.customer_id
            and records_to_compute.as_of_date >= transactions.transaction_date

),

{# Distinct months without a (record, month) group-by (11M groups at 20M transactions, the costliest
    step of this model): each month sets one bit of a 126-bit mask, at position month mod 126, held in two
    63-bit integers (on DuckDB in one 128-bit integer: one aggregate instead of two, segfit_month_bits). Within any 126 consecutive months the positions differ, so for a record whose months
    span fewer than 126 (10.5 years) the number of set bits is the exact count. Records with a longer span
    are counted exactly by long_span_months below. The quarters are counted with count(*) filter (a
    64-bit count, where sum(case ... then 1) keeps a 128-bit sum). #}
aggregated_in_one_pass as (

    select
        record_key,
        count(*) as transaction_count,
        sum(amount) as total_revenue,
        sum(profit) as net_profit,
        stddev_samp(amount) as amount_stddev,
        avg(amount) as amount_mean,
        count(*) filter (where transaction_quarter = 1) as q1_transactions,
        count(*) filter (where transaction_quarter = 2) as q2_transactions,
        count(*) filter (where transaction_quarter = 3) as q3_transactions,
        count(*) filter (where transaction_quarter = 4) as q4_transactions,
        min(transaction_date) as first_transaction_date,
        max(transaction_date) as last_transaction_date,
        {{ segfit_month_bits('transaction_month', 0) }} as month_bits_low,
        {{ segfit_month_bits('transaction_month', 1) }} as month_bits_high
    from point_in_time
    group by record_key

),

long_span_records as (

    select record_key
    from aggregated_in_one_pass
    {#- the month span from the first and last dates (the month index never decreases with the date, so
        these are the first and last months without two more aggregates over every transaction) #}
    where
        {{ segfit_month_index('last_transaction_date') }} - {{ segfit_month_index('first_transaction_date') }}
        >= {{ segfit_month_mask_width() }}

),

{# Exact distinct months for the records spanning 126 months or more (none in most data): their
    transactions are read again, through an import CTE of their own, and grouped by (record, month).
    With no such record the join's build side is empty and the engine skips the probe. #}
transactions_of_long_span_records as (

    select
        customer_id,
        transaction_date
    from {{ ref('int_transactions_validated') }}

),

long_span_months as (

    select
        long_span_records.record_key,
        count(distinct {{ segfit_month_index('transactions_of_long_span_records.transaction_date') }})
            as active_months
    from long_span_records
    inner join records_to_compute
        on long_span_records.record_key = records_to_compute.record_key
    inner join transactions_of_long_span_records
        on records_to_compute.customer_id = transactions_of_long_span_records.customer_id
            and records_to_compute.as_of_date >= transactions_of_long_span_records.transaction_date
    group by long_span_records.record_key

),

aggregated as (

    select
        aggregated_in_one_pass.*,
        coalesce(
            long_span_months.active_months,
            {{ segfit_bit_count('aggregated_in_one_pass.month_bits_low') }}
            + {{ segfit_bit_count('aggregated_in_one_pass.month_bits_high') }}
        ) as active_months
    from aggregated_in_one_pass
    left join long_span_months
        on aggregated_in_one_pass.record_key = long_span_months.record_key

),

final as (

    select
        records_to_compute.customer_record_id,
        records_to_compute.as_of_date,
        cast(coalesce(aggregated.transaction_count, 0) as {{ dbt.type_bigint() }}) as transaction_count,
        cast(coalesce(aggregated.total_revenue, 0) as {{ segfit_double() }}) as total_revenue,
        cast(aggregated.net_profit as {{ segfit_double() }}) as net_profit,
        cast(
            case
                when aggregated.transaction_count >= 2 and aggregated.amount_mean <> 0
                    then aggregated.amount_stddev / aggregated.amount_mean
            end as {{ segfit_double() }}
        ) as transaction_value_volatility,
        cast(coalesce(aggregated.q1_transactions, 0) as {{ dbt.type_bigint() }}) as q1_transactions,
        cast(coalesce(aggregated.q2_transactions, 0) as {{ dbt.type_bigint() }}) as q2_transactions,
        cast(coalesce(aggregated.q3_transactions, 0) as {{ dbt.type_bigint() }}) as q3_transactions,
        cast(coalesce(aggregated.q4_transactions, 0) as {{ dbt.type_bigint() }}) as q4_transactions,
        cast(
            {{ dbt.datediff('aggregated.first_transaction_date', 'records_to_compute.as_of_date', 'day') }}
            as {{ dbt.type_bigint() }}
        ) as customer_age_days,
        cast(
            {{ dbt.datediff('aggregated.last_transaction_date', 'records_to_compute.as_of_date', 'day') }}
            as {{ dbt.type_bigint() }}
        ) as days_since_last_transaction,
        cast(
            {{ segfit_ratio('aggregated.transaction_count', 'aggregated.active_months') }} as {{ segfit_double() }}
        ) as avg_transactions_per_month,
        aggregated.first_transaction_date,
        aggregated.last_transaction_date,
        records_to_compute.customer_id,
        records_to_compute.segmentation_date,
        stored_transactions.transactions_through_row
    from records_to_compute
    left join aggregated
        on records_to_compute.record_key = aggregated.record_key
    cross join stored_transactions

)

select * from final
