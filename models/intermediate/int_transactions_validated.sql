{#- One row per clean input transaction (key source_row_number): the rows of int_transactions_checked
    that passed every check. A view over the stored checked rows (a table where the engine needs one:
    segfit_clean_rows_materialization). -#}
{{ config(materialized=segfit_clean_rows_materialization()) }}

with

checked as (

    select
        source_row_number,
        transaction_id,
        customer_id,
        transaction_date,
        amount,
        profit,
        input_label,
        is_rejected
    from {{ ref('int_transactions_checked') }}

),

clean as (

    select
        source_row_number,
        transaction_id,
        customer_id,
        transaction_date,
        amount,
        profit,
        input_label
    from checked
    where not is_rejected

),

final as (

    select * from clean

)

select * from final
