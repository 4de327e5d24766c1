{#- One row per threshold rule (vars rule_*): how often the rule fires among anomaly records and among normal
    records, their difference in percentage points (hit_rate_difference_pp, not a lift), the conventional
    lift (P(anomaly | rule fires) / P(anomaly)), the sample odds ratio, and the Mantel-Haenszel odds ratio
    within segment (segments holding both anomaly and normal records). A null feature value is not a hit;
    rates are over all records of the group. An empty group, or a zero in a denominator, gives null.
    Fisher's exact p and the odds ratio's CI are computed in Python from these counts (SQL has no exact
    test); the customer-weighted Cochran-Mantel-Haenszel test per rule is part of the within-segment
    inference (metrics.json inference.tests). -#}
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

segment_hits as (
    {%- for feature, threshold in rules %}

        select
            '{{ feature }} > {{ threshold }}' as rule_name,
            '{{ feature }}' as feature_name,
            {{ threshold }} as threshold,
            profitability_segment,
            sum(case when is_classification_anomaly and {{ feature }} > {{ threshold }} then 1 else 0 end)
                as anomaly_hits,
            sum(case when is_classification_anomaly then 1 else 0 end) as anomaly_total,
            sum(case when not is_classification_anomaly and {{ feature }} > {{ threshold }} then 1 else 0 end)
                as normal_hits,
            sum(case when is_classification_anomaly then 0 else 1 end) as normal_total
        from fit
        group by profitability_segment
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}

),

mantel_haenszel as (

    -- per segment with both groups: a d / n and b c / n (a, b: anomaly hits / misses; c, d: normal)
    select
        rule_name,
        sum(
            {{ segfit_ratio('anomaly_hits * (normal_total - normal_hits)', 'anomaly_total + normal_total') }}
        ) as mh_numerator,
        sum(
            {{ segfit_ratio('(anomaly_total - anomaly_hits) * normal_hits', 'anomaly_total + normal_total') }}
        ) as mh_denominator,
        count(*) as mh_segments
    from segment_hits
    where anomaly_total > 0 and normal_total > 0
    group by rule_name

),

hits as (

    select
        rule_name,
        feature_name,
        threshold,
        sum(anomaly_hits) as anomaly_hits,
        sum(anomaly_total) as anomaly_total,
        sum(normal_hits) as normal_hits,
        sum(normal_total) as normal_total
    from segment_hits
    group by rule_name, feature_name, threshold

),

rule_list as (
    -- the rule list is fixed, so every rule has a row even when the fit is empty
    {%- for feature, threshold in rules %}

        select
            '{{ feature }} > {{ threshold }}' as rule_name,
            '{{ feature }}' as feature_name,
            {{ threshold }} as threshold
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}

),

rates as (

    select
        rule_list.rule_name,
        rule_list.feature_name,
        rule_list.threshold,
        coalesce(hits.anomaly_hits, 0) as anomaly_hits,
        coalesce(hits.anomaly_total, 0) as anomaly_total,
        coalesce(hits.normal_hits, 0) as normal_hits,
        coalesce(hits.normal_total, 0) as normal_total,
        {{ segfit_ratio('hits.anomaly_hits', 'hits.anomaly_total') }} as anomaly_hit_rate,
        {{ segfit_ratio('hits.normal_hits', 'hits.normal_total') }} as normal_hit_rate,
        mantel_haenszel.mh_numerator,
        mantel_haenszel.mh_denominator,
        coalesce(mantel_haenszel.mh_segments, 0) as mh_segments
    from rule_list
    left join hits on rule_list.rule_name = hits.rule_name
    left join mantel_haenszel on rule_list.rule_name = mantel_haenszel.rule_name

),

final as (

    select
        cast(rule_name as {{ segfit_text() }}) as rule_name,
        cast(feature_name as {{ segfit_text() }}) as feature_name,
        cast('>' as {{ segfit_text() }}) as operator,
        cast(threshold as {{ segfit_double() }}) as threshold,
        cast(anomaly_hits as {{ dbt.type_bigint() }}) as anomaly_hits,
        cast(anomaly_total as {{ dbt.type_bigint() }}) as anomaly_total,
        cast(normal_hits as {{ dbt.type_bigint() }}) as normal_hits,
        cast(normal_total as {{ dbt.type_bigint() }}) as normal_total,
        cast(anomaly_hit_rate as {{ segfit_double() }}) as anomaly_hit_rate,
        cast(normal_hit_rate as {{ segfit_double() }}) as normal_hit_rate,
        cast((anomaly_hit_rate - normal_hit_rate) * 100 as {{ segfit_double() }}) as hit_rate_difference_pp,
        cast(
            {{ segfit_ratio(segfit_ratio('anomaly_hits', 'anomaly_hits + normal_hits'),
                            segfit_ratio('anomaly_total', 'anomaly_total + normal_total')) }}
            as {{ segfit_double() }}
        ) as lift,
        cast(
            {{ segfit_ratio('anomaly_hits * (normal_total - normal_hits)',
                            '(anomaly_total - anomaly_hits) * normal_hits') }}
            as {{ segfit_double() }}
        ) as odds_ratio,
        cast(mh_numerator / nullif(mh_denominator, 0) as {{ segfit_double() }}) as mh_odds_ratio,
        cast(mh_segments as {{ dbt.type_bigint() }}) as mh_segments
    from rates

)

select * from final
