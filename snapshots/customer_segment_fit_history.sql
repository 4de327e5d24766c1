{#- SCD2 history of each customer's segment fit, one version per change, over builds (`dbt snapshot`,
    run by `dbt build`). Grain of the source query: one row per customer_id, its latest record by the
    `latest` grain rule (latest segmentation_date, missing = oldest; then highest subsidiary_id; then the
    record that appears last in the file), so the history is the same whichever grain the marts use.
    A build is a new file: the segfit CLI carries this table over from the published build before dbt
    runs (macro segfit_carry_forward_history), so history survives publishing.
    segment_avg_retention is stored but not checked: DuckDB's parallel avg() may differ in the last bits
    between two builds of the same data (0.3999999999999995 vs 0.3999999999999998), which is not a change. -#}
{% snapshot customer_segment_fit_history %}

{{ config(
    schema='snapshots',
    unique_key='customer_id',
    strategy='check',
    check_cols=['profitability_segment', 'retention_probability', 'is_classification_anomaly'],
    hard_deletes='invalidate',
) }}

    with

    fit as (

        select * from {{ ref('customer_segment_fit') }}

    ),

    ranked as (

        select
            customer_id,
            subsidiary_id,
            customer_record_id,
            segmentation_date,
            profitability_segment,
            retention_probability,
            segment_avg_retention,
            retention_deviation,
            is_classification_anomaly,
            row_number() over (
                partition by customer_id
                order by segmentation_date desc nulls last, subsidiary_id desc nulls last, source_row_number desc
            ) as recency_rank
        from fit

    ),

    final as (

        select
            customer_id,
            subsidiary_id,
            customer_record_id,
            segmentation_date,
            profitability_segment,
            retention_probability,
            segment_avg_retention,
            retention_deviation,
            is_classification_anomaly
        from ranked
        where recency_rank = 1

    )

    select * from final

{% endsnapshot %}
