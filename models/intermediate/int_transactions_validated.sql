{#- One row per clean input transaction (key source_row_number): the staged transactions that are not
    quarantined in int_transactions_rejected. A view: the clean rows are read from the input when they
    are used, instead of being copied into the warehouse (20M rows cost more to write than to check). -#}
{{ config(materialized=segfit_clean_rows_materialization()) }}

with

transactions as (

    select
        source_row_number,
        transaction_id,
        customer_id,
        transaction_date,
        amount,
        profit,
        input_label
    from {{ ref('stg_transactions') }}

),

rejected as (

    select source_row_number
    from {{ ref('int_transactions_rejected') }}

),

clean as (

    select transactions.*
    from transactions
    left join rejected
        on transactions.source_row_number = rejected.source_row_number
    where rejected.source_row_number is null

),

final as (

    select * from clean

)

select * from final
