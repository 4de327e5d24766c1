{#- One row per threshold rule (vars rule_*): how often the rule fires among anomaly records and
    among normal records, and the lift in percentage points. A null feature value is not a hit;
    rates are over all records of the group. An empty group has null rates and null lift. -#}
{%- set cfg = segfit_config() -%}
{%- set rules = [
    ('seasonality_cv', cfg['rule_seasonality_cv']),
    ('transaction_value_volatility', cfg['rule_transaction_value_volatility']),
    ('txn_consistency_error', cfg['rule_txn_consistency_error']),
] -%}

with

fit as (

    select * from {{ ref('customer_segment_fit') }}

),

hits as (
    {%- for feature, threshold in rules %}

        select
            '{{ feature }} > {{ threshold }}' as rule_name,
            '{{ feature }}' as feature_name,
            {{ threshold }} as threshold,
            sum(case when is_classification_anomaly and {{ feature }} > {{ threshold }} then 1 else 0 end)
                as anomaly_hits,
            sum(case when is_classification_anomaly then 1 else 0 end) as anomaly_total,
            sum(case when not is_classification_anomaly and {{ feature }} > {{ threshold }} then 1 else 0 end)
                as normal_hits,
            sum(case when is_classification_anomaly then 0 else 1 end) as normal_total
        from fit
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}

),

rates as (

    select
        hits.*,
        {{ segfit_ratio('anomaly_hits', 'anomaly_total') }} as anomaly_hit_rate,
        {{ segfit_ratio('normal_hits', 'normal_total') }} as normal_hit_rate
    from hits

),

final as (

    select
        cast(rule_name as {{ segfit_text() }}) as rule_name,
        cast(feature_name as {{ segfit_text() }}) as feature_name,
        cast('>' as {{ segfit_text() }}) as operator,
        cast(threshold as {{ segfit_double() }}) as threshold,
        cast(coalesce(anomaly_hits, 0) as {{ dbt.type_bigint() }}) as anomaly_hits,
        cast(coalesce(anomaly_total, 0) as {{ dbt.type_bigint() }}) as anomaly_total,
        cast(coalesce(normal_hits, 0) as {{ dbt.type_bigint() }}) as normal_hits,
        cast(coalesce(normal_total, 0) as {{ dbt.type_bigint() }}) as normal_total,
        cast(anomaly_hit_rate as {{ segfit_double() }}) as anomaly_hit_rate,
        cast(normal_hit_rate as {{ segfit_double() }}) as normal_hit_rate,
        cast((anomaly_hit_rate - normal_hit_rate) * 100 as {{ segfit_double() }}) as lift_pp
    from rates

)

select * from final
