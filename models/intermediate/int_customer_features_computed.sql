{#- One row per customer record in the grain: behaviour (from transactions when they are given,
    else the precomputed columns as given) and every derived stability, seasonality and value feature.
    seasonal_preference and lifecycle_stage pass through when given and are derived otherwise:
      seasonal_preference = 'Q<n> Peak' for the quarter with the largest share when that share is
                            >= var seasonal_peak_min_share (ties: the earliest quarter), else 'Balanced';
                            null when the record has no quarterly transactions.
      lifecycle_stage     = 'At Risk' when the record has no transactions, or when the days since the last
                            transaction exceed var lifecycle_at_risk_days (known from transactions input
                            only), else 'Mature' when customer_age_days >=
                            var lifecycle_mature_days, else 'Growth'; null when the age is unknown. -#}
{{ config(materialized='view') }}
{%- set cfg = segfit_config() -%}
{%- set has_transactions = segfit_has_transactions() -%}
{%- set quarters = ['q1', 'q2', 'q3', 'q4'] -%}

with

records as (

    select * from {{ ref('int_customer_records_deduplicated') }}

),

transaction_behaviour as (

    select * from {{ ref('int_customer_transactions_aggregated') }}

),

behaviour as (

    select
        records.customer_record_id,
        records.customer_id,
        records.subsidiary_id,
        records.customer_name,
        records.segmentation_date,
        records.source_row_number,
        records.profitability_segment,
        records.retention_probability,
        records.comprehensive_customer_score,
        records.lifecycle_stage as given_lifecycle_stage,
        records.seasonal_preference as given_seasonal_preference,
        {%- if has_transactions %}
            'transactions' as behaviour_source,
            transaction_behaviour.as_of_date,
            transaction_behaviour.total_revenue,
            transaction_behaviour.net_profit,
            transaction_behaviour.transaction_count,
            transaction_behaviour.avg_transactions_per_month,
            transaction_behaviour.transaction_value_volatility,
            {%- for q in quarters %}
                transaction_behaviour.{{ q }}_transactions,
            {%- endfor %}
            transaction_behaviour.customer_age_days,
            transaction_behaviour.days_since_last_transaction
        {%- else %}
        'precomputed' as behaviour_source,
        transaction_behaviour.as_of_date,
        records.total_revenue,
        records.net_profit,
        records.transaction_count,
        records.avg_transactions_per_month,
        records.transaction_value_volatility,
        {%- for q in quarters %}
        records.{{ q }}_transactions,
        {%- endfor %}
        records.customer_age_days,
        cast(null as {{ dbt.type_bigint() }}) as days_since_last_transaction
        {%- endif %}
    from records
    left join transaction_behaviour
        on records.customer_record_id = transaction_behaviour.customer_record_id

),

quarter_totals as (

    select
        behaviour.*,
        q1_transactions + q2_transactions + q3_transactions + q4_transactions as quarter_total
    from behaviour

),

shares as (

    select
        quarter_totals.*,
        {%- for q in quarters %}
            {{ segfit_ratio(q ~ '_transactions', 'quarter_total') }} as {{ q }}_share,
        {%- endfor %}
        {{ segfit_ratio('quarter_total', '4') }} as quarter_mean
    from quarter_totals

),

seasonality as (

    select
        shares.*,
        sqrt((
            {%- for q in quarters %}
                ({{ q }}_share - 0.25) * ({{ q }}_share - 0.25){% if not loop.last %} +{% endif %}
            {%- endfor %}
        ) / 4.0) as seasonality_std,
        greatest(q1_share, q2_share, q3_share, q4_share)
        - least(q1_share, q2_share, q3_share, q4_share) as seasonality_imbalance,
        (
            {%- for q in quarters %}
                case when {{ q }}_share > 0 then {{ q }}_share * ln(1.0 / {{ q }}_share) else 0 end
                {%- if not loop.last %} +{% endif %}
            {%- endfor %}
        ) / ln(4.0) as seasonality_entropy_raw,
        sqrt((
            {%- for q in quarters %}
                ({{ q }}_transactions - quarter_mean) * ({{ q }}_transactions - quarter_mean)
                {%- if not loop.last %} +{% endif %}
            {%- endfor %}
        ) / 4.0) / nullif(quarter_mean, 0) as seasonality_cv,
        greatest(q1_share, q2_share, q3_share, q4_share) as max_share
    from shares

),

stability as (

    select
        seasonality.*,
        {#- rounded to 12 decimal places: ln() differs in the last bit between engines, and the report's rank
            tests must see the same ties on DuckDB and Spark -#}
        case when quarter_total > 0 then round(seasonality_entropy_raw, 12) end as seasonality_entropy_norm,
        {{ segfit_ratio('customer_age_days', '30') }} as months_active,
        avg_transactions_per_month * {{ segfit_ratio('customer_age_days', '30') }} as expected_transactions,
        transaction_count - quarter_total as quarterly_coverage_gap
    from seasonality

),

final as (

    select
        customer_record_id,
        customer_id,
        subsidiary_id,
        customer_name,
        segmentation_date,
        as_of_date,
        source_row_number,
        profitability_segment,
        coalesce(
            given_lifecycle_stage,
            case
                when transaction_count = 0 then 'At Risk'
                when days_since_last_transaction > {{ cfg['lifecycle_at_risk_days'] }} then 'At Risk'
                when customer_age_days >= {{ cfg['lifecycle_mature_days'] }} then 'Mature'
                when customer_age_days >= 0 then 'Growth'
            end
        ) as lifecycle_stage,
        case when given_lifecycle_stage is not null then 'given' else 'derived' end as lifecycle_stage_source,
        coalesce(
            given_seasonal_preference,
            case
                when quarter_total is null or quarter_total = 0 then null
                when max_share < {{ cfg['seasonal_peak_min_share'] }} then 'Balanced'
                {%- for q in quarters %}
                    when {{ q }}_share = max_share then '{{ q | upper }} Peak'
                {%- endfor %}
            end
        ) as seasonal_preference,
        case when given_seasonal_preference is not null then 'given' else 'derived' end
            as seasonal_preference_source,
        retention_probability,
        comprehensive_customer_score,
        behaviour_source,
        total_revenue,
        net_profit,
        transaction_count,
        avg_transactions_per_month,
        transaction_value_volatility,
        {%- for q in quarters %}
            {{ q }}_transactions,
        {%- endfor %}
        customer_age_days,
        days_since_last_transaction,
        {%- for q in quarters %}
            {{ q }}_share,
        {%- endfor %}
        seasonality_std,
        seasonality_imbalance,
        seasonality_entropy_norm,
        seasonality_cv,
        months_active,
        expected_transactions,
        transaction_count / nullif(expected_transactions, 0) as txn_consistency_ratio,
        abs(transaction_count - expected_transactions) / nullif(expected_transactions, 0)
            as txn_consistency_error,
        quarterly_coverage_gap,
        {{ segfit_ratio('quarterly_coverage_gap', 'transaction_count') }} as quarterly_coverage_gap_ratio,
        total_revenue / nullif(comprehensive_customer_score, 0) as revenue_per_score
    from stability

)

select * from final
