{#- One row per clean input customer record (key source_row_number): the staged records that are not
    quarantined in int_customers_rejected, typed. A view, like int_transactions_validated: the clean
    records are read from staging when they are used (the grain model keeps the copy that the features
    use), instead of being written once more here. -#}
{{ config(materialized=segfit_clean_rows_materialization()) }}
{%- set numeric = segfit_customer_numeric_columns() -%}

with

customers as (

    select * from {{ ref('stg_customers') }}

),

rejected as (

    select source_row_number
    from {{ ref('int_customers_rejected') }}

),

clean as (

    select
        customers.source_row_number,
        customers.customer_id,
        customers.subsidiary_id,
        customers.customer_name,
        customers.profitability_segment,
        customers.lifecycle_stage,
        customers.seasonal_preference,
        customers.segmentation_date,
        customers.retention_probability,
        {%- for name in numeric['doubles'] %}
            customers.{{ name }},
        {%- endfor %}
        {%- for name in numeric['integers'] %}
            cast(customers.{{ name }} as {{ dbt.type_bigint() }}) as {{ name }},
        {%- endfor %}
        customers.input_label
    from customers
    left join rejected
        on customers.source_row_number = rejected.source_row_number
    where rejected.source_row_number is null

),

final as (

    select * from clean

)

select * from final
