{#- One row per input customer record: text columns, typed copies of the typed ones, extras untouched. -#}
{{ config(materialized=segfit_staging_materialization('customers')) }}
{%- set input = segfit_input('customers') -%}
{%- set numeric = segfit_customer_numeric_columns() -%}
{%- set doubles = ['retention_probability'] + numeric['doubles'] + numeric['integers'] -%}

with

source as (

    {{ segfit_staged_input(input) }}

),

final as (

    select
        cast(_segfit_row_number as {{ dbt.type_bigint() }}) as source_row_number,
        {{ segfit_clean_text('customer_id') }} as customer_id,
        {{ segfit_clean_text('subsidiary_id') }} as subsidiary_id,
        {{ segfit_clean_text('customer_name') }} as customer_name,
        {{ segfit_clean_text('profitability_segment') }} as profitability_segment,
        {{ segfit_clean_text('lifecycle_stage') }} as lifecycle_stage,
        {{ segfit_clean_text('seasonal_preference') }} as seasonal_preference,
        {{- segfit_typed_columns(doubles, ['segmentation_date'], input) }}
        {{- segfit_passthrough_columns(input) }}
        {{ segfit_sql_string(input.label) }} as input_label
    from source

)

select * from final
