{#- One row per data-quality issue found in the inputs.
    severity 'rejected': the input row is quarantined (it is not in any clean table);
    severity 'warning' : the row is kept (duplicate business key, quarter counts not summing to
                         transaction_count in precomputed input, a segment label that differs from a more
                         common one only in letter case - reported once, at the first row of that spelling). -#}
{%- set numeric = segfit_customer_numeric_columns() -%}
{%- set inputs = [
    {'name': 'customers', 'key': 'customer_id', 'text_columns': ['customer_id', 'profitability_segment'],
     'checks': ['customer_id', 'profitability_segment', 'retention_probability', 'segmentation_date']
               + numeric['doubles'] + numeric['integers']},
    {'name': 'transactions', 'key': 'transaction_id', 'text_columns': ['transaction_id', 'customer_id'],
     'checks': ['transaction_id', 'customer_id', 'transaction_date', 'amount', 'profit']},
] -%}

with

customers as (

    select * from {{ ref('int_customers_rejected') }}

),

repeated_keys as (

    select
        customer_id,
        subsidiary_id,
        first_source_row_number
    from {{ ref('duplicate_customer_keys') }}

),

clean_keyed_rows as (

    {#- the clean records are imported once per reader: a CTE read twice is materialized #}
    select
        source_row_number,
        customer_id,
        subsidiary_id
    from {{ ref('int_customers_validated') }}

),

clean_quarters as (

    select
        source_row_number,
        customer_id,
        transaction_count,
        q1_transactions,
        q2_transactions,
        q3_transactions,
        q4_transactions
    from {{ ref('int_customers_validated') }}

),

clean_segments as (

    select
        source_row_number,
        customer_id,
        profitability_segment
    from {{ ref('int_customers_validated') }}

),

transactions as (

    select * from {{ ref('int_transactions_rejected') }}

),

rejections as (
    {%- for input in inputs %}
        {%- set last_input = loop.last %}
        {%- for column in input.checks %}

            select
                '{{ input.name }}' as source,
                source_row_number,
                {{ input.key }} as row_key,
                '{{ column }}' as column_name,
                {% if column in input.text_columns -%}
                    cast({{ column }} as {{ segfit_text() }})
                {%- elif column in ['segmentation_date', 'transaction_date'] -%}
                    coalesce({{ column }}_raw, {{ segfit_timestamp_text(column) }})
                {%- else -%}
                    coalesce({{ column }}_raw, {{ segfit_number_text(column) }})
                {%- endif %} as issue_value,
                check_{{ column }} as reason,
                'rejected' as severity
            from {{ input.name }}
            where check_{{ column }} is not null
            {%- if not (last_input and loop.last) %}

                union all
            {%- endif %}
        {%- endfor %}
    {%- endfor %}

),

duplicate_keys as (

    select
        clean_keyed_rows.source_row_number,
        clean_keyed_rows.customer_id,
        clean_keyed_rows.subsidiary_id,
        repeated_keys.first_source_row_number as first_row_with_key
    from clean_keyed_rows
    inner join repeated_keys
        on
            clean_keyed_rows.customer_id = repeated_keys.customer_id
            and coalesce(clean_keyed_rows.subsidiary_id, '') = coalesce(repeated_keys.subsidiary_id, '')

),

duplicate_warnings as (

    select
        'customers' as source,
        source_row_number,
        customer_id as row_key,
        'customer_id, subsidiary_id' as column_name,
        {{ dbt.concat(["customer_id", "' / '", "coalesce(subsidiary_id, '(null)')"]) }} as issue_value,
        {{ dbt.concat(["'duplicate business key (customer_id, subsidiary_id), first seen at data row '",
                       "cast(first_row_with_key as " ~ segfit_text() ~ ")"]) }} as reason,
        'warning' as severity
    from duplicate_keys
    where source_row_number > first_row_with_key

),

quarter_warnings as (

    select
        'customers' as source,
        source_row_number,
        customer_id as row_key,
        'q1_transactions..q4_transactions' as column_name,
        {{ segfit_number_text('q1_transactions + q2_transactions + q3_transactions + q4_transactions') }}
            as issue_value,
        {{ dbt.concat(["'quarter counts sum to a different number than transaction_count ('",
                       "cast(transaction_count as " ~ segfit_text() ~ ")", "')'"]) }} as reason,
        'warning' as severity
    from clean_quarters
    where
        q1_transactions + q2_transactions + q3_transactions + q4_transactions <> transaction_count
        {#- derived from transactions, the quarters always sum: only given (precomputed) counts can disagree.
            Decided from the built data, not from vars, so `dbt build --select marts` without the vars of the
            full build reports the same warnings #}
        and not exists (
            select 1 from {{ ref('customer_segment_fit') }} as fit
            where fit.behaviour_source = 'transactions'
        )

),

segment_spellings as (

    select
        profitability_segment,
        lower(profitability_segment) as folded_segment,
        count(*) as records,
        min(source_row_number) as first_row_with_spelling
    from clean_segments
    group by profitability_segment

),

ranked_spellings as (

    {#- the most common spelling of a label is the reference; ties go to the first in sort order #}
    select
        profitability_segment,
        folded_segment,
        records,
        first_row_with_spelling,
        row_number() over (
            partition by folded_segment order by records desc, profitability_segment asc
        ) as spelling_rank
    from segment_spellings

),

segment_case_warnings as (

    select
        'customers' as source,
        variant.first_row_with_spelling as source_row_number,
        clean_segments.customer_id as row_key,
        'profitability_segment' as column_name,
        variant.profitability_segment as issue_value,
        {{ dbt.concat(["'segment label differs only in letter case from \"'", "reference.profitability_segment",
                       "'\" ('", "cast(variant.records as " ~ segfit_text() ~ ")",
                       "' records with this spelling); labels are case-sensitive, so these are separate segments'"]) }}
            as reason,
        'warning' as severity
    from ranked_spellings as variant
    inner join ranked_spellings as reference
        on
            variant.folded_segment = reference.folded_segment
            and reference.spelling_rank = 1
    inner join clean_segments
        on variant.first_row_with_spelling = clean_segments.source_row_number
    where variant.spelling_rank > 1

),

unioned as (

    select * from rejections
    union all
    select * from duplicate_warnings
    union all
    select * from quarter_warnings
    union all
    select * from segment_case_warnings

),

final as (

    select
        cast(
            {{ segfit_surrogate_key(['source', 'source_row_number', 'column_name', 'severity']) }}
            as {{ segfit_text() }}
        ) as issue_id,
        cast(source as {{ segfit_text() }}) as source,
        cast(source_row_number as {{ dbt.type_bigint() }}) as source_row_number,
        cast(row_key as {{ segfit_text() }}) as row_key,
        cast(column_name as {{ segfit_text() }}) as column_name,
        cast(issue_value as {{ segfit_text() }}) as issue_value,
        cast(reason as {{ segfit_text() }}) as reason,
        cast(severity as {{ segfit_text() }}) as severity
    from unioned

)

select * from final
