{#- One row per customer record in the chosen grain: behaviour features, the segment's average
    retention, the record's deviation from it and the classification-anomaly flag.
    The flag is strict: abs(deviation) > threshold. Deviations are rounded to 10 decimal places before
    the comparison so binary floating-point noise (0.65 - 0.5 = 0.15000000000000002) cannot decide the
    boundary. In relative mode the deviation is divided by the segment average; a segment average of 0
    gives no relative deviation and no flag. In zscore mode it is divided by the segment's sample standard
    deviation of retention (segment_sd_retention); a segment with one record or SD 0 gives no flag.
    The deviation itself is stored rounded to 12 places: the segment average is a parallel sum whose last
    bit no engine fixes (DuckDB run to run, DuckDB against Spark), and equal deviations must stay equal so
    that classification_anomalies ranks them the same way everywhere.
    Incremental on an appending run (DuckDB): when the customer side is the stored rows' (see
    segfit_fit_keeps_stored_rows), only the records whose transaction aggregates were recomputed are
    rebuilt (delete+insert on customer_record_id), with the stored segment statistics, and the post-hook
    recomputes value_mismatch_z over every row; otherwise every record is recomputed. Every other run
    builds the whole table. Not a merge: DuckDB updates the ~2 % of scattered rows in place column by
    column, which at 5M records cost 11 s (the MERGE, then its COMMIT writing the updates) against 0.6 s for
    deleting and appending the same rows (session 10, the statements of one daily append replayed). -#}
{%- set cfg = segfit_config() -%}
{%- set append = segfit_transactions_append() -%}
{{ config(
    materialized=segfit_transactions_materialization(),
    unique_key='customer_record_id',
    incremental_strategy='delete+insert',
    full_refresh=(none if append else true),
    on_schema_change='fail',
    post_hook="{{ segfit_fit_population_update() }}",
) }}
{%- set keep_stored = is_incremental() and segfit_fit_keeps_stored_rows(this) %}

with

{#- A full build reads the features three times, each through an import CTE of its own: a CTE read twice
    is materialized (every column of every record: at 5M records the copy spilled to disk), while each of
    these reads only the columns it needs from the view. When the stored rows are kept, the features are
    the recomputed records only (about 2 % of them), read once and materialized: two filtered reads of
    the view ran out of DuckDB's 1 GB in a 5M-record append, where this single read does not. #}
features as (

    select * from {{ ref('int_customer_features_computed') }}
    {%- if keep_stored %}
        where customer_record_id in ({{ segfit_recomputed_records() }})
    {%- endif %}

),
{%- if keep_stored %}

    revenue_and_score as (

        select
            total_revenue,
            comprehensive_customer_score
        from features

    ),
{%- else %}

    retention_by_segment as (

        select
            profitability_segment,
            retention_probability
        from {{ ref('int_customer_features_computed') }}

    ),

    revenue_and_score as (

        select
            total_revenue,
            comprehensive_customer_score
        from {{ ref('int_customer_features_computed') }}

    ),
{%- endif %}

{#- Grouped aggregates joined back (rather than window aggregates): hash aggregation runs in
    parallel, while an unpartitioned window materializes the whole table in one thread. #}

per_segment as (
    {%- if keep_stored %}

        {#- the stored statistics: the same customer side gives the same ones #}
        select distinct
            profitability_segment,
            segment_avg_retention,
            segment_sd_retention,
            segment_record_count
        from {{ this }}
    {%- else %}

        select
            profitability_segment,
            avg(retention_probability) as segment_avg_retention,
            stddev_samp(retention_probability) as segment_sd_retention,
            count(*) as segment_record_count
        from retention_by_segment
        group by profitability_segment
    {%- endif %}

),

{# when the stored rows are kept, these are the rebuilt records' statistics only: the post-hook then
    recomputes value_mismatch_z over the whole table #}
population as (

    select
        avg(total_revenue) as revenue_mean,
        stddev_pop(total_revenue) as revenue_std,
        avg(comprehensive_customer_score) as score_mean,
        stddev_pop(comprehensive_customer_score) as score_std
    from revenue_and_score

),

segment_stats as (

    select
        features.*,
        per_segment.segment_avg_retention,
        per_segment.segment_sd_retention,
        per_segment.segment_record_count,
        population.revenue_mean,
        population.revenue_std,
        population.score_mean,
        population.score_std
    from features
    inner join per_segment
        on features.profitability_segment = per_segment.profitability_segment
    cross join population

),

deviations as (

    select
        segment_stats.*,
        round(retention_probability - segment_avg_retention, 12) as retention_deviation,
        {{ segfit_value_mismatch_z('revenue_mean', 'revenue_std', 'score_mean', 'score_std') }} as value_mismatch_z
    from segment_stats

),

flagged as (

    select
        deviations.*,
        {%- if cfg['anomaly_threshold_mode'] == 'relative' %}
        coalesce(
            round(abs(retention_deviation) / nullif(segment_avg_retention, 0), 10) > {{ cfg['anomaly_threshold'] }},
            false
        ) as is_classification_anomaly
        {%- elif cfg['anomaly_threshold_mode'] == 'zscore' %}
        coalesce(
            round(abs(retention_deviation) / nullif(segment_sd_retention, 0), 10) > {{ cfg['anomaly_threshold'] }},
            false
        ) as is_classification_anomaly
        {%- else %}
            coalesce(round(abs(retention_deviation), 10) > {{ cfg['anomaly_threshold'] }}, false)
                as is_classification_anomaly
        {%- endif %}
    from deviations

),

final as (

    select
        cast(customer_record_id as {{ segfit_text() }}) as customer_record_id,
        cast(customer_id as {{ segfit_text() }}) as customer_id,
        cast(subsidiary_id as {{ segfit_text() }}) as subsidiary_id,
        cast(customer_name as {{ segfit_text() }}) as customer_name,
        cast(segmentation_date as {{ dbt.type_timestamp() }}) as segmentation_date,
        cast(as_of_date as {{ dbt.type_timestamp() }}) as as_of_date,
        cast(source_row_number as {{ dbt.type_bigint() }}) as source_row_number,
        cast(profitability_segment as {{ segfit_text() }}) as profitability_segment,
        cast(lifecycle_stage as {{ segfit_text() }}) as lifecycle_stage,
        cast(lifecycle_stage_source as {{ segfit_text() }}) as lifecycle_stage_source,
        cast(seasonal_preference as {{ segfit_text() }}) as seasonal_preference,
        cast(seasonal_preference_source as {{ segfit_text() }}) as seasonal_preference_source,
        cast(retention_probability as {{ segfit_double() }}) as retention_probability,
        cast(comprehensive_customer_score as {{ segfit_double() }}) as comprehensive_customer_score,
        cast(behaviour_source as {{ segfit_text() }}) as behaviour_source,
        cast(total_revenue as {{ segfit_double() }}) as total_revenue,
        cast(net_profit as {{ segfit_double() }}) as net_profit,
        cast(transaction_count as {{ dbt.type_bigint() }}) as transaction_count,
        cast(avg_transactions_per_month as {{ segfit_double() }}) as avg_transactions_per_month,
        cast(transaction_value_volatility as {{ segfit_double() }}) as transaction_value_volatility,
        {%- for q in ['q1', 'q2', 'q3', 'q4'] %}
            cast({{ q }}_transactions as {{ dbt.type_bigint() }}) as {{ q }}_transactions,
        {%- endfor %}
        cast(customer_age_days as {{ dbt.type_bigint() }}) as customer_age_days,
        {%- for q in ['q1', 'q2', 'q3', 'q4'] %}
            cast({{ q }}_share as {{ segfit_double() }}) as {{ q }}_share,
        {%- endfor %}
        {%- for name in ['seasonality_std', 'seasonality_imbalance', 'seasonality_entropy_norm', 'seasonality_cv',
                         'months_active', 'expected_transactions', 'txn_consistency_ratio', 'txn_consistency_error'] %}
            cast({{ name }} as {{ segfit_double() }}) as {{ name }},
        {%- endfor %}
        cast(quarterly_coverage_gap as {{ dbt.type_bigint() }}) as quarterly_coverage_gap,
        cast(quarterly_coverage_gap_ratio as {{ segfit_double() }}) as quarterly_coverage_gap_ratio,
        cast(revenue_per_score as {{ segfit_double() }}) as revenue_per_score,
        cast(value_mismatch_z as {{ segfit_double() }}) as value_mismatch_z,
        cast(segment_record_count as {{ dbt.type_bigint() }}) as segment_record_count,
        cast(segment_avg_retention as {{ segfit_double() }}) as segment_avg_retention,
        cast(segment_sd_retention as {{ segfit_double() }}) as segment_sd_retention,
        cast(retention_deviation as {{ segfit_double() }}) as retention_deviation,
        cast(abs(retention_deviation) as {{ segfit_double() }}) as abs_retention_deviation,
        cast(case when round(retention_deviation, 10) < 0 then 'below' else 'above' end as {{ segfit_text() }})
            as deviation_direction,
        cast({{ cfg['anomaly_threshold'] }} as {{ segfit_double() }}) as anomaly_threshold,
        cast('{{ cfg['anomaly_threshold_mode'] }}' as {{ segfit_text() }}) as anomaly_threshold_mode,
        is_classification_anomaly
    from flagged

)

select * from final
