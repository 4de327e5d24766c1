{#- One row per customer record in the grain: its point-in-time transaction behaviour.
    A record uses only its customer's clean transactions dated on or before its as-of date
    (segmentation_date, or the latest clean transaction date in the data when that is missing).
    Customers with no transactions keep their row, with a count of 0. The heavy join and group-by use
    integer keys (the record's source_row_number, the month as year * 12 + month): grouping 20M rows by
    a text key costs twice as much. -#}

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
        coalesce(records.segmentation_date, data_as_of.max_transaction_date) as as_of_date
    from records
    cross join data_as_of

),

point_in_time as (

    select
        records_as_of.record_key,
        transactions.transaction_date,
        transactions.amount,
        transactions.profit,
        {{ segfit_quarter('transactions.transaction_date') }} as transaction_quarter,
        {{ segfit_month_index('transactions.transaction_date') }} as transaction_month
    from records_as_of
    inner join transactions
        on records_as_of.customer_id = transactions.customer_id
            and records_as_of.as_of_date >= transactions.transaction_date

),

aggregated as (

    select
        record_key,
        count(*) as transaction_count,
        sum(amount) as total_revenue,
        sum(profit) as net_profit,
        stddev_samp(amount) as amount_stddev,
        avg(amount) as amount_mean,
        sum(case when transaction_quarter = 1 then 1 else 0 end) as q1_transactions,
        sum(case when transaction_quarter = 2 then 1 else 0 end) as q2_transactions,
        sum(case when transaction_quarter = 3 then 1 else 0 end) as q3_transactions,
        sum(case when transaction_quarter = 4 then 1 else 0 end) as q4_transactions,
        min(transaction_date) as first_transaction_date,
        max(transaction_date) as last_transaction_date,
        count(distinct transaction_month) as active_months
    from point_in_time
    group by record_key

),

final as (

    select
        records_as_of.customer_record_id,
        records_as_of.as_of_date,
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
            {{ dbt.datediff('aggregated.first_transaction_date', 'records_as_of.as_of_date', 'day') }}
            as {{ dbt.type_bigint() }}
        ) as customer_age_days,
        cast(
            {{ dbt.datediff('aggregated.last_transaction_date', 'records_as_of.as_of_date', 'day') }}
            as {{ dbt.type_bigint() }}
        ) as days_since_last_transaction,
        cast(
            {{ segfit_ratio('aggregated.transaction_count', 'aggregated.active_months') }} as {{ segfit_double() }}
        ) as avg_transactions_per_month,
        aggregated.first_transaction_date,
        aggregated.last_transaction_date
    from records_as_of
    left join aggregated
        on records_as_of.record_key = aggregated.record_key

)

select * from final
