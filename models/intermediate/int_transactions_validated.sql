{#- One row per clean input transaction (key source_row_number): the rows of int_transactions_checked
    that passed every check. A view (a table where the engine needs one: segfit_clean_rows_materialization).
    When the checked rows are a view (a full load on DuckDB), the clean rows are the staged transactions
    that are not quarantined in int_transactions_rejected (an anti-join on the row number against the
    small stored quarantine), so the checks run once per build, not again wherever the clean rows are
    read. When they are stored (transactions_load store or append), the clean rows are read from there. -#}
{{ config(materialized=segfit_clean_rows_materialization()) }}
-- depends_on: {{ ref('int_transactions_checked') }}
{%- set from_input = segfit_checked_materialization() == 'view' %}

with
{%- if from_input %}

    staged as (

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

        select staged.*
        from staged
        left join rejected
            on staged.source_row_number = rejected.source_row_number
        where rejected.source_row_number is null

    ),
{%- else %}

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
{%- endif %}

final as (

    select * from clean

)

select * from final
