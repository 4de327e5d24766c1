{#- One row per (behaviour feature, group): n, mean and median of the feature among anomaly and
    normal records. Both groups are always present; an empty group has n = 0 and null statistics. -#}
{%- set features = ['transaction_count', 'avg_transactions_per_month', 'transaction_value_volatility',
                    'customer_age_days', 'total_revenue', 'net_profit', 'comprehensive_customer_score',
                    'q1_share', 'q2_share', 'q3_share', 'q4_share', 'seasonality_std',
                    'seasonality_imbalance', 'seasonality_entropy_norm', 'seasonality_cv',
                    'txn_consistency_ratio', 'txn_consistency_error', 'quarterly_coverage_gap_ratio',
                    'revenue_per_score', 'value_mismatch_z'] -%}

with

fit as (

    select * from {{ ref('customer_segment_fit') }}

),

grouped as (

    select
        fit.*,
        case when is_classification_anomaly then 'anomaly' else 'normal' end as anomaly_group
    from fit

),

groups as (

    select 'anomaly' as anomaly_group
    union all
    select 'normal' as anomaly_group

),

long_values as (
    {%- for feature in features %}

        select
            '{{ feature }}' as feature_name,
            anomaly_group,
            cast({{ feature }} as {{ segfit_double() }}) as feature_value
        from grouped
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}

),

statistics as (

    select
        feature_name,
        anomaly_group,
        count(feature_value) as n,
        avg(feature_value) as mean_value,
        {{ segfit_median('feature_value') }} as median_value
    from long_values
    group by feature_name, anomaly_group

),

feature_groups as (
    {%- for feature in features %}

        select
            '{{ feature }}' as feature_name,
            {{ loop.index }} as feature_order,
            anomaly_group
        from groups
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}

),

final as (

    select
        cast(feature_groups.feature_name as {{ segfit_text() }}) as feature_name,
        cast(feature_groups.anomaly_group as {{ segfit_text() }}) as anomaly_group,
        cast(feature_groups.feature_order as {{ dbt.type_bigint() }}) as feature_order,
        cast(coalesce(statistics.n, 0) as {{ dbt.type_bigint() }}) as n,
        cast(statistics.mean_value as {{ segfit_double() }}) as mean_value,
        cast(statistics.median_value as {{ segfit_double() }}) as median_value
    from feature_groups
    left join statistics
        on feature_groups.feature_name = statistics.feature_name
            and feature_groups.anomaly_group = statistics.anomaly_group

)

select * from final
