{#- One row per (behaviour feature, group): n, mean and median of the feature among anomaly and
    normal records. Both groups are always present; an empty group has n = 0 and null statistics. -#}
{%- set features = ['transaction_count', 'avg_transactions_per_month', 'transaction_value_volatility',
                    'customer_age_days', 'total_revenue', 'net_profit', 'comprehensive_customer_score',
                    'q1_share', 'q2_share', 'q3_share', 'q4_share', 'seasonality_std',
                    'seasonality_imbalance', 'seasonality_entropy_norm', 'seasonality_cv',
                    'txn_consistency_ratio', 'txn_consistency_error', 'quarterly_coverage_gap_ratio',
                    'revenue_per_score', 'value_mismatch_z'] -%}

{#- The fit mart is read three times (the statistics, the bucket counts, the values in the middle buckets),
    each time through a CTE of its own: a CTE that is read twice is materialized, which would copy all
    20 features x N records (at 5M records that copy spilled to disk and cost more than all the rest). -#}

with

-- One narrow row per non-null feature value: the feature's number and the flag, not their names.
values_for_statistics as (

    {{ segfit_feature_values(ref('customer_segment_fit'), features) }}

),

values_for_bucket_counts as (

    {{ segfit_feature_values(ref('customer_segment_fit'), features) }}

),

values_for_medians as (

    {{ segfit_feature_values(ref('customer_segment_fit'), features) }}

),

groups as (

    select
        'anomaly' as anomaly_group,
        true as is_anomaly
    union all
    select
        'normal' as anomaly_group,
        false as is_anomaly

),

statistics as (

    select
        feature_order,
        is_anomaly,
        count(*) as n,
        avg(feature_value) as mean_value,
        min(feature_value) as min_value,
        max(feature_value) as max_value,
        floor((count(*) + 1) / 2.0) as lower_middle_rank,
        floor(count(*) / 2.0) + 1 as upper_middle_rank
    from values_for_statistics
    group by feature_order, is_anomaly

),

-- Each value's bucket, twice: for the bucket counts, and for the values in the middle buckets (each from
-- its own read of the fit mart).
{%- for name, values in [('bucketed', 'values_for_bucket_counts'), ('values_with_buckets', 'values_for_medians')] %}

    {{ name }} as (

        select
            long_values.feature_order,
            long_values.is_anomaly,
            long_values.feature_value,
            {#- its bucket among 1,024 equal-width buckets of its (feature, group) range #}
            case
                when statistics.max_value = statistics.min_value then 0
                else least(1023, floor(
                        (long_values.feature_value - statistics.min_value)
                        / (statistics.max_value - statistics.min_value) * 1024
                    ))
            end as bucket
        from {{ values }} as long_values
        inner join statistics
            on long_values.feature_order = statistics.feature_order
                and long_values.is_anomaly = statistics.is_anomaly

    ),
{%- endfor %}

-- The exact median in bounded memory. A percentile aggregate keeps every value of its group in memory
-- (20 features x 5M records did not fit in DuckDB's 1 GB limit), and ranking all values sorts them all.
-- Instead: count the values in 1,024 equal-width buckets per group, find the bucket(s) holding the
-- middle rank(s), and rank only the values in those buckets. n odd: the middle value; n even: the mean
-- of the two middle values.
bucket_counts as (

    select
        feature_order,
        is_anomaly,
        bucket,
        count(*) as bucket_n
    from bucketed
    group by feature_order, is_anomaly, bucket

),

bucket_ranges as (

    select
        feature_order,
        is_anomaly,
        bucket,
        bucket_n,
        sum(bucket_n) over (
            partition by feature_order, is_anomaly
            order by bucket
            rows between unbounded preceding and current row
        ) - bucket_n as ranks_before
    from bucket_counts

),

middle_buckets as (

    select
        bucket_ranges.feature_order,
        bucket_ranges.is_anomaly,
        bucket_ranges.bucket,
        bucket_ranges.ranks_before
    from bucket_ranges
    inner join statistics
        on bucket_ranges.feature_order = statistics.feature_order
            and bucket_ranges.is_anomaly = statistics.is_anomaly
    where
        (
            bucket_ranges.ranks_before < statistics.lower_middle_rank
            and bucket_ranges.ranks_before + bucket_ranges.bucket_n >= statistics.lower_middle_rank
        )
        or (
            bucket_ranges.ranks_before < statistics.upper_middle_rank
            and bucket_ranges.ranks_before + bucket_ranges.bucket_n >= statistics.upper_middle_rank
        )

),

middle_candidates as (

    select
        values_with_buckets.feature_order,
        values_with_buckets.is_anomaly,
        values_with_buckets.feature_value,
        middle_buckets.ranks_before + row_number() over (
            partition by values_with_buckets.feature_order, values_with_buckets.is_anomaly, values_with_buckets.bucket
            order by values_with_buckets.feature_value
        ) as value_rank
    from values_with_buckets
    inner join middle_buckets
        on values_with_buckets.feature_order = middle_buckets.feature_order
            and values_with_buckets.is_anomaly = middle_buckets.is_anomaly
            and values_with_buckets.bucket = middle_buckets.bucket

),

medians as (

    select
        middle_candidates.feature_order,
        middle_candidates.is_anomaly,
        avg(middle_candidates.feature_value) as median_value
    from middle_candidates
    inner join statistics
        on middle_candidates.feature_order = statistics.feature_order
            and middle_candidates.is_anomaly = statistics.is_anomaly
    where
        middle_candidates.value_rank = statistics.lower_middle_rank
        or middle_candidates.value_rank = statistics.upper_middle_rank
    group by middle_candidates.feature_order, middle_candidates.is_anomaly

),

feature_groups as (
    {%- for feature in features %}

        select
            '{{ feature }}' as feature_name,
            {{ loop.index }} as feature_order,
            anomaly_group,
            is_anomaly
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
        cast(medians.median_value as {{ segfit_double() }}) as median_value
    from feature_groups
    left join statistics
        on feature_groups.feature_order = statistics.feature_order
            and feature_groups.is_anomaly = statistics.is_anomaly
    left join medians
        on feature_groups.feature_order = medians.feature_order
            and feature_groups.is_anomaly = medians.is_anomaly

)

select * from final
