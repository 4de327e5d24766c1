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

{# key_occurrence (the record's place among the records with its customer_id, subsidiary_id and
    segmentation_date, in input order) is ranked only where a key repeats: a window over every record
    sorts all of them (the costliest step of this model at 1M records) to number almost only 1s. The
    repeated keys come from a hash group-by, their records are ranked alone, every other record is 1.
    A null subsidiary_id or segmentation_date is a value of the key here, as in a window's partition,
    hence `is not distinct from`. Each read of the clean records is its own import CTE (a CTE read twice
    is materialized). #}
repeated_keys as (

    select
        customer_id,
        subsidiary_id,
        segmentation_date
    from {{ ref('int_customers_validated') }}
    group by customer_id, subsidiary_id, segmentation_date
    having count(*) > 1

),

records_with_repeated_keys as (

    select
        source_row_number,
        customer_id,
        subsidiary_id,
        segmentation_date
    from {{ ref('int_customers_validated') }}

),

repeated_key_occurrences as (

    select
        records_with_repeated_keys.source_row_number,
        row_number() over (
            partition by
                records_with_repeated_keys.customer_id,
                records_with_repeated_keys.subsidiary_id,
                records_with_repeated_keys.segmentation_date
            order by records_with_repeated_keys.source_row_number
        ) as key_occurrence
    from records_with_repeated_keys
    inner join repeated_keys
        on
            records_with_repeated_keys.customer_id = repeated_keys.customer_id
            and records_with_repeated_keys.subsidiary_id is not distinct from repeated_keys.subsidiary_id
            and records_with_repeated_keys.segmentation_date is not distinct from repeated_keys.segmentation_date

),

ranked as (

    select
        valid_records.*,
        {%- if cfg['customer_grain'] == 'latest' %}
            row_number() over (
                partition by valid_records.customer_id
                order by
                    valid_records.segmentation_date desc nulls last,
                    valid_records.subsidiary_id desc nulls last,
                    valid_records.source_row_number desc
            ) as latest_rank,
        {%- endif %}
        coalesce(repeated_key_occurrences.key_occurrence, 1) as key_occurrence
    from valid_records
    left join repeated_key_occurrences
        on valid_records.source_row_number = repeated_key_occurrences.source_row_number

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
