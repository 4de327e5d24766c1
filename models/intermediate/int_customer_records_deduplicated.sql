{#- One row per clean customer record in the chosen grain (var customer_grain):
    all    = every clean record, keyed by customer_record_id;
    latest = one record per customer_id: the latest segmentation_date (a missing date counts as the
             oldest), then the highest subsidiary_id, then the record that appears last in the input.
    The clean records come from the int_customers_validated view; this is the one table that copies them. -#}
{%- set cfg = segfit_config() -%}

with

valid_records as (

    select * from {{ ref('int_customers_validated') }}

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

    select
        keyed.*,
        {#- the grain this table was built in, as data: marts.build_metadata reads it from here, so a partial
            run with other vars cannot misreport it #}
        cast({{ segfit_sql_string(cfg['customer_grain']) }} as {{ segfit_text() }}) as customer_grain
    from keyed
    {%- if cfg['customer_grain'] == 'latest' %}
    where latest_rank = 1
    {%- endif %}

)

select * from final
