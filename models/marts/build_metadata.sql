{#- One row per input source (key source): what this warehouse was built from and how. The input's
    label, and its file name, size and SHA-256 when the segfit CLI built it (SEGFIT_INPUT_FINGERPRINTS;
    null for a plain dbt run or the demo seeds), the grain, the anomaly threshold and mode, every segfit
    var as JSON, and the dbt invocation that built it. Every value from a var or the environment enters
    the SQL as an escaped string literal (segfit_sql_string). -#}
{%- set cfg = segfit_config() -%}
{%- set customers = segfit_input_description('customers') -%}
{%- set transactions = segfit_input_description('transactions') -%}
{%- set built_at = segfit_sql_string(run_started_at.strftime('%Y-%m-%d %H:%M:%S')) -%}

with

staged_customers as (

    {#- every staged row carries the same label: any one row will do, and reading one is cheap #}
    select input_label from {{ ref('stg_customers') }} limit 1  -- noqa: AM09

),

staged_transactions as (

    select input_label from {{ ref('stg_transactions') }} limit 1  -- noqa: AM09

),

customers_input as (

    select
        'customers' as source,
        {#- the label of the rows that were staged, when there are any (the data decides, not this run's vars) #}
        coalesce(
            {{ segfit_metadata_label('(select input_label from staged_customers)') }}, {{ customers.label }}
        ) as input_label,
        cast({{ customers.file_name }} as {{ segfit_text() }}) as file_name,
        cast({{ customers.size_bytes }} as {{ dbt.type_bigint() }}) as file_size_bytes,
        cast({{ customers.sha256 }} as {{ segfit_text() }}) as file_sha256

),

transactions_input as (

    select
        'transactions' as source,
        coalesce(
            {{ segfit_metadata_label('(select input_label from staged_transactions)') }}, {{ transactions.label }}
        ) as input_label,
        cast({{ transactions.file_name }} as {{ segfit_text() }}) as file_name,
        cast({{ transactions.size_bytes }} as {{ dbt.type_bigint() }}) as file_size_bytes,
        cast({{ transactions.sha256 }} as {{ segfit_text() }}) as file_sha256

),

inputs as (

    select * from customers_input
    union all
    select * from transactions_input

),

built_grain as (

    select min(customer_grain) as customer_grain from {{ ref('int_customer_records_deduplicated') }}

),

built_threshold as (

    select
        min(anomaly_threshold) as anomaly_threshold,
        min(anomaly_threshold_mode) as anomaly_threshold_mode
    from {{ ref('customer_segment_fit') }}

),

final as (

    {#- grain, threshold and mode as the built tables hold them; this run's vars only when there are no
        records (then they changed nothing) #}
    select
        inputs.source,
        inputs.input_label,
        inputs.file_name,
        inputs.file_size_bytes,
        inputs.file_sha256,
        coalesce(built_grain.customer_grain, {{ segfit_sql_string(cfg['customer_grain']) }}) as customer_grain,
        coalesce(
            built_threshold.anomaly_threshold, cast({{ cfg['anomaly_threshold'] }} as {{ segfit_double() }})
        ) as anomaly_threshold,
        coalesce(
            built_threshold.anomaly_threshold_mode, {{ segfit_sql_string(cfg['anomaly_threshold_mode']) }}
        ) as anomaly_threshold_mode,
        {{ segfit_sql_string(tojson(cfg, sort_keys=true)) }} as vars_json,
        {{ segfit_sql_string(invocation_id) }} as dbt_invocation_id,
        {{ segfit_sql_string(dbt_version) }} as dbt_version,
        cast({{ built_at }} as {{ dbt.type_timestamp() }}) as built_at
    from inputs
    cross join built_grain
    cross join built_threshold

)

select * from final
