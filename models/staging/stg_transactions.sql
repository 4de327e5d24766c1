{#- One row per input transaction (zero rows when no transactions are given). -#}
{{ config(materialized=segfit_staging_materialization('transactions')) }}
{%- set input = segfit_input('transactions') -%}

with

source as (

    {{ segfit_staged_input(input) }}

),

final as (

    select
        cast(_segfit_row_number as {{ dbt.type_bigint() }}) as source_row_number,
        {{ segfit_clean_text('transaction_id') }} as transaction_id,
        {{ segfit_clean_text('customer_id') }} as customer_id,
        {{- segfit_typed_columns(['amount', 'profit'], ['transaction_date'], input) }}
        {{- segfit_passthrough_columns(input) }}
        {{ segfit_sql_string(input.label) }} as input_label
    from source

)

select * from final
