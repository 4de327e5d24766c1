{#- One row per classification-anomaly record, ranked by absolute deviation (largest first; ties go to
    customer_record_id). The deviation is stored rounded to 12 places (customer_segment_fit), so a
    last-bit difference between two equal deviations cannot reorder them on another engine.
    Incremental on an appending run (DuckDB, merged on customer_record_id): only the anomaly rows that are
    new or differ from the stored ones (in their rank or in any column but value_mismatch_z) are merged;
    the post-hooks then remove the records that are no longer anomalies and copy value_mismatch_z, which
    every append moves (see customer_segment_fit), from customer_segment_fit. Every other run builds the
    whole table. -#}
{%- set append = segfit_transactions_append() -%}
{{ config(
    materialized=segfit_transactions_materialization(),
    unique_key='customer_record_id',
    incremental_strategy='merge',
    full_refresh=(none if append else true),
    on_schema_change='fail',
    post_hook=["{{ segfit_anomalies_remove_stale() }}", "{{ segfit_anomalies_population_update() }}"],
) }}
{%- set incremental = is_incremental() %}

with

fit as (

    select * from {{ ref('customer_segment_fit') }}

),

{# ranked on two columns, then joined back: a window over every column of the rows sorts all of them #}
ranks as (

    select
        customer_record_id,
        cast(
            row_number() over (order by abs_retention_deviation desc, customer_record_id asc)
            as {{ dbt.type_bigint() }}
        ) as anomaly_rank
    from fit
    where is_classification_anomaly

),

anomalies as (

    select
        fit.*,
        ranks.anomaly_rank
    from fit
    inner join ranks
        on fit.customer_record_id = ranks.customer_record_id

),
{%- if incremental %}
    {%- set compared = [] %}
    {%- for column in adapter.get_columns_in_relation(this) %}
        {%- if column.name not in ('customer_record_id', 'value_mismatch_z') %}
            {%- do compared.append(adapter.quote(column.name)) %}
        {%- endif %}
    {%- endfor %}

    stored as (

        select * from {{ this }}

    ),

    changed as (

        select anomalies.*
        from anomalies
        left join stored
            on anomalies.customer_record_id = stored.customer_record_id
        where
            stored.customer_record_id is null
            {%- for column in compared %}
                or anomalies.{{ column }} is distinct from stored.{{ column }}
            {%- endfor %}

    ),
{%- endif %}

final as (

    select *
    from {{ 'changed' if incremental else 'anomalies' }}

)

select * from final
order by anomaly_rank
