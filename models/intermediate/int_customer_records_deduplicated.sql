{#- One row per clean customer record in the chosen grain (var customer_grain):
    all    = every clean record, keyed by customer_record_id;
    latest = one record per customer_id: the latest segmentation_date (a missing date counts as the
             oldest), then the highest subsidiary_id, then the record that appears last in the input.
    Only the columns the features use are kept (the check_* and raw-text columns of the validation are
    all null on clean rows). -#}
{%- set cfg = segfit_config() -%}
{%- set numeric = segfit_customer_numeric_columns() -%}

with

valid_records as (

    select
        source_row_number,
        customer_id,
        subsidiary_id,
        customer_name,
        profitability_segment,
        lifecycle_stage,
        seasonal_preference,
        segmentation_date,
        {%- for name in numeric['doubles'] + numeric['integers'] %}
            {{ name }},
        {%- endfor %}
        retention_probability
    from {{ ref('int_customers_validated') }}

),

ranked as (

    select
        valid_records.*,
        {%- if cfg['customer_grain'] == 'latest' %}
            row_number() over (
                partition by customer_id
                order by segmentation_date desc nulls last, subsidiary_id desc nulls last, source_row_number desc
            ) as latest_rank,
        {%- endif %}
        row_number() over (
            partition by customer_id, subsidiary_id, segmentation_date
            order by source_row_number
        ) as key_occurrence
    from valid_records

),

keyed as (

    select
        {{ segfit_surrogate_key(['customer_id', 'subsidiary_id', 'segmentation_date', 'key_occurrence']) }}
            as customer_record_id,
        ranked.*
    from ranked

),

final as (

    select * from keyed
    {%- if cfg['customer_grain'] == 'latest' %}
    where latest_rank = 1
    {%- endif %}

)

select * from final
