{#- One row per (grouping_level, profitability_segment, anomaly_group): mean Q1-Q4 shares.
    grouping_level 'segment' has one row per segment x group (anomaly / normal / all);
    grouping_level 'overall' has one row per group over every segment (profitability_segment null).
    Means are over the records that have quarterly transactions (records_with_quarters). -#}

with

fit as (

    select * from {{ ref('customer_segment_fit') }}

),

labelled as (

    select
        profitability_segment,
        case when is_classification_anomaly then 'anomaly' else 'normal' end as anomaly_group,
        q1_share,
        q2_share,
        q3_share,
        q4_share
    from fit

),

expanded as (

    select
        'segment' as grouping_level,
        profitability_segment,
        anomaly_group,
        q1_share,
        q2_share,
        q3_share,
        q4_share
    from labelled
    union all
    select
        'segment' as grouping_level,
        profitability_segment,
        'all' as anomaly_group,
        q1_share,
        q2_share,
        q3_share,
        q4_share
    from labelled
    union all
    select
        'overall' as grouping_level,
        cast(null as {{ segfit_text() }}) as profitability_segment,
        anomaly_group,
        q1_share,
        q2_share,
        q3_share,
        q4_share
    from labelled
    union all
    select
        'overall' as grouping_level,
        cast(null as {{ segfit_text() }}) as profitability_segment,
        'all' as anomaly_group,
        q1_share,
        q2_share,
        q3_share,
        q4_share
    from labelled

),

aggregated as (

    select
        grouping_level,
        profitability_segment,
        anomaly_group,
        count(*) as record_count,
        count(q1_share) as records_with_quarters,
        avg(q1_share) as q1_share_mean,
        avg(q2_share) as q2_share_mean,
        avg(q3_share) as q3_share_mean,
        avg(q4_share) as q4_share_mean
    from expanded
    group by grouping_level, profitability_segment, anomaly_group

),

final as (

    select
        cast(
            {{ dbt.concat(["grouping_level", "'|'", "coalesce(profitability_segment, '*')", "'|'", "anomaly_group"]) }}
            as {{ segfit_text() }}
        ) as seasonal_distribution_id,
        cast(grouping_level as {{ segfit_text() }}) as grouping_level,
        cast(profitability_segment as {{ segfit_text() }}) as profitability_segment,
        cast(anomaly_group as {{ segfit_text() }}) as anomaly_group,
        cast(record_count as {{ dbt.type_bigint() }}) as record_count,
        cast(records_with_quarters as {{ dbt.type_bigint() }}) as records_with_quarters,
        cast(q1_share_mean as {{ segfit_double() }}) as q1_share_mean,
        cast(q2_share_mean as {{ segfit_double() }}) as q2_share_mean,
        cast(q3_share_mean as {{ segfit_double() }}) as q3_share_mean,
        cast(q4_share_mean as {{ segfit_double() }}) as q4_share_mean
    from aggregated

)

select * from final
