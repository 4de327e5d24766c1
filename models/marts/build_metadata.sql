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

customers_input as (

    select
        'customers' as source,
        {{ customers.label }} as input_label,
        cast({{ customers.file_name }} as {{ segfit_text() }}) as file_name,
        cast({{ customers.size_bytes }} as {{ dbt.type_bigint() }}) as file_size_bytes,
        cast({{ customers.sha256 }} as {{ segfit_text() }}) as file_sha256

),

transactions_input as (

    select
        'transactions' as source,
        {{ transactions.label }} as input_label,
        cast({{ transactions.file_name }} as {{ segfit_text() }}) as file_name,
        cast({{ transactions.size_bytes }} as {{ dbt.type_bigint() }}) as file_size_bytes,
        cast({{ transactions.sha256 }} as {{ segfit_text() }}) as file_sha256

),

inputs as (

    select * from customers_input
    union all
    select * from transactions_input

),

final as (

    select
        source,
        input_label,
        file_name,
        file_size_bytes,
        file_sha256,
        {{ segfit_sql_string(cfg['customer_grain']) }} as customer_grain,
        cast({{ cfg['anomaly_threshold'] }} as {{ segfit_double() }}) as anomaly_threshold,
        {{ segfit_sql_string(cfg['anomaly_threshold_mode']) }} as anomaly_threshold_mode,
        {{ segfit_sql_string(tojson(cfg, sort_keys=true)) }} as vars_json,
        {{ segfit_sql_string(invocation_id) }} as dbt_invocation_id,
        {{ segfit_sql_string(dbt_version) }} as dbt_version,
        cast({{ built_at }} as {{ dbt.type_timestamp() }}) as built_at
    from inputs

)

select * from final
