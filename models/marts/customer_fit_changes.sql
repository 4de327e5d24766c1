{#- One row per customer whose classification-anomaly status changed between the previous build and
    this one (key customer_id): who became an anomaly, who stopped being one, and anomalies that are new
    or gone. Built from the snapshot snapshots.customer_segment_fit_history: the versions that started
    and ended at this build's snapshot time. Empty on the first build (nothing to compare with). -#}

with

history as (

    select * from {{ ref('customer_segment_fit_history') }}

),

this_run as (

    {#- the snapshot stamps its versions (UTC: the session time zone) after this invocation started #}
    select cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }}) as started_at

),

earlier_versions as (

    select count(*) as version_count
    from history
    cross join this_run
    where history.dbt_valid_from < this_run.started_at

),

started as (

    select history.*
    from history
    cross join this_run
    where history.dbt_valid_from >= this_run.started_at

),

ended as (

    select history.*
    from history
    cross join this_run
    where history.dbt_valid_to >= this_run.started_at

),

compared as (

    select
        coalesce(started.customer_id, ended.customer_id) as customer_id,
        ended.profitability_segment as previous_segment,
        started.profitability_segment as current_segment,
        ended.retention_probability as previous_retention,
        started.retention_probability as current_retention,
        coalesce(ended.is_classification_anomaly, false) as was_anomaly,
        coalesce(started.is_classification_anomaly, false) as is_anomaly,
        ended.customer_id is not null as was_present,
        started.customer_id is not null as is_present,
        coalesce(started.dbt_valid_from, ended.dbt_valid_to) as changed_at
    from started
    full outer join ended on started.customer_id = ended.customer_id

),

final as (

    select
        compared.customer_id,
        case
            when not compared.was_present then 'new_anomaly'
            when not compared.is_present then 'gone_anomaly'
            when compared.is_anomaly then 'became_anomaly'
            else 'stopped_being_anomaly'
        end as change_type,
        compared.previous_segment,
        compared.current_segment,
        compared.previous_retention,
        compared.current_retention,
        compared.was_anomaly,
        compared.is_anomaly,
        compared.changed_at
    from compared
    cross join earlier_versions
    where
        earlier_versions.version_count > 0
        and compared.was_anomaly != compared.is_anomaly

)

select * from final
