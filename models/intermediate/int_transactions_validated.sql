{#- One row per input transaction, typed, with one check_* column per rule (null = passed).
    Refunds (negative amounts) are valid transactions: they count, and they net off revenue. -#}
{%- set cfg = segfit_config() -%}

with

transactions as (

    select * from {{ ref('stg_transactions') }}

),

valid_customers as (

    select distinct customer_id
    from {{ ref('int_customers_validated') }}
    where not is_rejected

),

occurrences as (

    select
        transactions.*,
        row_number() over (
            partition by transaction_id order by source_row_number
        ) as id_occurrence,
        min(source_row_number) over (partition by transaction_id) as first_row_with_id
    from transactions

),

checked as (

    select
        occurrences.*,
        case
            when transaction_id is null then 'transaction_id is null or blank'
            when id_occurrence > 1
                then {{ dbt.concat(["'duplicate transaction_id (first seen at data row '",
                                    "cast(first_row_with_id as " ~ segfit_text() ~ ")", "')'"]) }}
        end as check_transaction_id,
        case
            when occurrences.customer_id is null then 'customer_id is null or blank'
            when valid_customers.customer_id is null then 'customer_id has no valid customer record (orphan)'
        end as check_customer_id,
        case
            when transaction_date_raw is null then 'transaction_date is null or blank'
            when transaction_date is null then 'transaction_date is not a valid date'
            when transaction_date
                > {{ dbt.dateadd('day', cfg['future_transaction_grace_days'] | int, dbt.current_timestamp()) }}
                then 'transaction_date is in the future'
        end as check_transaction_date,
        case
            when amount_raw is null then 'amount is null or blank'
            when amount is null then 'amount is not a number'
            when abs(amount) > 1e300 then 'amount is not a finite number'
        end as check_amount,
        case
            when profit_raw is not null and profit is null then 'profit is not a number'
            when abs(profit) > 1e300 then 'profit is not a finite number'
        end as check_profit
    from occurrences
    left join valid_customers
        on occurrences.customer_id = valid_customers.customer_id

),

final as (

    select
        source_row_number,
        transaction_id,
        customer_id,
        transaction_date,
        amount,
        profit,
        check_transaction_id,
        check_customer_id,
        check_transaction_date,
        check_amount,
        check_profit,
        (
            check_transaction_id is not null
            or check_customer_id is not null
            or check_transaction_date is not null
            or check_amount is not null
            or check_profit is not null
        ) as is_rejected,
        transaction_date_raw,
        amount_raw,
        profit_raw,
        input_label
    from checked

)

select * from final
