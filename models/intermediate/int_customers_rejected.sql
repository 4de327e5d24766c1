{#- One row per REJECTED input customer record (key source_row_number): the quarantine. Every staged
    record is checked with one check_<column> per rule (null = passed); only the failing rows are stored,
    with the text as given (`<column>_raw`). The clean records are int_customers_validated. -#}
{%- set cfg = segfit_config() -%}
{%- set optional_doubles = segfit_customer_numeric_columns()['doubles'] -%}
{%- set integers = segfit_customer_numeric_columns()['integers'] -%}
{%- set bounds = segfit_plausible_bounds() -%}

with

customers as (

    select * from {{ ref('stg_customers') }}

),

checked as (

    select
        customers.*,
        case
            when customer_id is null then 'customer_id is null or blank'
        end as check_customer_id,
        case
            when profitability_segment is null then 'profitability_segment is null or blank'
            {%- if cfg['allowed_segments'] | length > 0 %}
            when profitability_segment not in (
                {%- for segment in cfg['allowed_segments'] %}'{{ segment }}'{% if not loop.last %}, {% endif %}{% endfor -%}
            ) then 'profitability_segment is not one of the allowed segments'
            {%- endif %}
        end as check_profitability_segment,
        case
            when retention_probability is null
                then
                    case
                        when retention_probability_raw is null then 'retention_probability is null or blank'
                        else 'retention_probability is not a number'
                    end
            when abs(retention_probability) > 1e300 then 'retention_probability is not a finite number'
            when retention_probability > 1 and retention_probability <= 100
                then 'retention_probability is outside [0, 1] (looks like a percentage)'
            when retention_probability < 0 or retention_probability > 1
                then 'retention_probability is outside [0, 1]'
        end as check_retention_probability,
        case
            when segmentation_date is null and segmentation_date_raw is not null
                then 'segmentation_date is not a valid date'
            {{ segfit_date_range_checks('segmentation_date', bounds) }}
        end as check_segmentation_date,
        {%- for name in optional_doubles %}
            case
                when {{ name }} is null and {{ name }}_raw is not null then '{{ name }} is not a number'
                when abs({{ name }}) > 1e300 then '{{ name }} is not a finite number'
                {{ segfit_value_bound_check(name, bounds) }}
            end as check_{{ name }},
        {%- endfor %}
        {%- for name in integers %}
            case
                when {{ name }} is null and {{ name }}_raw is not null then '{{ name }} is not a number'
                when abs({{ name }}) > 1e15 then '{{ name }} is out of range'
                when {{ name }} <> floor({{ name }}) then '{{ name }} is not a whole number'
                when {{ name }} < 0 then '{{ name }} is negative'
            end as check_{{ name }},
        {%- endfor %}
        1 as one
    from customers

),

flagged as (

    select
        source_row_number,
        customer_id,
        subsidiary_id,
        customer_name,
        profitability_segment,
        lifecycle_stage,
        seasonal_preference,
        segmentation_date,
        retention_probability,
        {%- for name in optional_doubles %}
            {{ name }},
        {%- endfor %}
        {%- for name in integers %}
            case when check_{{ name }} is null then cast({{ name }} as {{ dbt.type_bigint() }}) end as {{ name }},
        {%- endfor %}
        {%- set checked_columns = ['customer_id', 'profitability_segment', 'retention_probability',
                                   'segmentation_date'] + optional_doubles + integers %}
        {%- for name in checked_columns %}
            check_{{ name }},
        {%- endfor %}
        (
            1 = 0
            {%- for name in checked_columns %}
                or check_{{ name }} is not null
            {%- endfor %}
        ) as is_rejected,
        {%- for name in ['retention_probability', 'segmentation_date'] + optional_doubles + integers %}
            {{ name }}_raw,
        {%- endfor %}
        input_label
    from checked

),

final as (

    select * from flagged
    where is_rejected

)

select * from final
