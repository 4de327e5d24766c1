{#-
    Incremental daily loads (var transactions_load = append): the new transactions file is added to the
    stored, checked transactions (int_transactions_checked) and only the customer records it affects are
    recomputed (int_customer_transactions_aggregated). Everything else is rebuilt as in a full build.
-#}

{#- The stored transaction models are incremental on DuckDB; elsewhere (Spark) plain tables, rebuilt
    each run, until the append path is ported (its delete+insert strategy is not dbt-spark's). -#}
{% macro segfit_transactions_materialization() -%}
    {{ return(adapter.dispatch('segfit_transactions_materialization', 'segfit')()) }}
{%- endmacro %}
{% macro default__segfit_transactions_materialization() -%}
    {{ return('table') }}
{%- endmacro %}
{% macro duckdb__segfit_transactions_materialization() -%}
    {{ return('incremental') }}
{%- endmacro %}

{#- Does this run keep every checked transaction in the warehouse (var transactions_load store or append),
    so that later runs can append to them? Only with a transactions file, and only on DuckDB. A full load
    (the default) stores only the rejected rows: writing every input row costs a full build more than the
    whole feature computation (20.8 s against a 13.6 s floor query at 1M customers / 20M transactions). -#}
{% macro segfit_transactions_stored() -%}
    {%- set cfg = segfit_config() -%}
    {%- set load = cfg['transactions_load'] -%}
    {%- if load == 'full' -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if segfit_transactions_materialization() != 'incremental' -%}
        {{ segfit_fail("var 'transactions_load' " ~ load ~ " is implemented for DuckDB only, not " ~ target.type) }}
    {%- endif -%}
    {%- if cfg['transactions_path'] == '' -%}
        {{ segfit_fail("var 'transactions_load' is " ~ load ~ ", but no transactions file is given"
                       ~ " (var transactions_path): " ~ load ~ " keeps a transactions file's rows in the warehouse") }}
    {%- endif -%}
    {{ return(true) }}
{%- endmacro %}

{#- Does this run append its transactions file to the stored ones? Only with a transactions file. -#}
{% macro segfit_transactions_append() -%}
    {{ return(segfit_transactions_stored() and segfit_config()['transactions_load'] == 'append') }}
{%- endmacro %}

{#- int_transactions_checked: stored (incremental) when this run stores the transactions; otherwise a view
    on DuckDB (its rejected half is stored by int_transactions_rejected, its clean half is read from the
    input through int_transactions_validated), a table elsewhere (Spark). -#}
{% macro segfit_checked_materialization() -%}
    {%- if segfit_transactions_stored() -%}
        {{ return('incremental') }}
    {%- endif -%}
    {{ return(adapter.dispatch('segfit_checked_materialization', 'segfit')()) }}
{%- endmacro %}
{% macro default__segfit_checked_materialization() -%}
    {{ return('table') }}
{%- endmacro %}
{% macro duckdb__segfit_checked_materialization() -%}
    {{ return('view') }}
{%- endmacro %}

{#- The vars whose value is baked into the stored transactions (their checks, and the records they are
    aggregated for). Appending under other values would mix configurations. -#}
{% macro segfit_stored_state_vars() -%}
    {{ return(['customers_path', 'demo_variant', 'allowed_segments', 'customer_grain', 'earliest_plausible_date',
               'max_abs_value', 'future_transaction_grace_days']) }}
{%- endmacro %}

{#- Before appending, decide from the warehouse's data whether the stored transactions are still valid for
    this run, and stop with one line otherwise:
    - the last build's vars (marts.build_metadata.vars_json) that shaped the stored rows equal this run's;
    - the customer records equal the ones the stored aggregates were computed for (same ids, customers
      and segmentation dates: the orphan check and the as-of dates depend on them);
    - the new file is not one that was appended already (every one of its ids stored). -#}
{% macro segfit_append_guard(checked, staged, records) -%}
    {%- set cfg = segfit_config() -%}
    {%- set advice = "; rebuild with --full-refresh (or transactions_load store) on all the transactions" -%}
    {%- set marts_schema = generate_schema_name('marts', none) | trim -%}
    {%- set metadata = adapter.get_relation(checked.database, marts_schema, 'build_metadata') -%}
    {%- set aggregated = adapter.get_relation(
        checked.database, checked.schema, 'int_customer_transactions_aggregated') -%}
    {%- if metadata is none or aggregated is none -%}
        {{ segfit_fail("transactions_load is append, but the warehouse has no complete earlier build to append to"
                       ~ " (marts.build_metadata or int_customer_transactions_aggregated is missing)" ~ advice) }}
    {%- endif -%}
    {%- set stored_vars_json = run_query(
        "select vars_json from " ~ metadata ~ " where source = 'transactions'").columns[0].values() -%}
    {%- if stored_vars_json | length != 1 -%}
        {{ segfit_fail("transactions_load is append, but marts.build_metadata does not describe one earlier build"
                       ~ advice) }}
    {%- endif -%}
    {%- set stored = fromjson(stored_vars_json[0]) -%}
    {%- for name in segfit_stored_state_vars() -%}
        {%- if (stored.get(name) | string) != (cfg[name] | string) -%}
            {{ segfit_fail("transactions_load is append, but var '" ~ name ~ "' is " ~ (cfg[name] | string | tojson)
                           ~ " where the stored transactions were built with " ~ (stored.get(name) | string | tojson)
                           ~ advice) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set changed_records -%}
        select count(*)
        from {{ records }} as records
        full outer join {{ aggregated }} as stored
            on records.customer_record_id = stored.customer_record_id
        where
            records.customer_record_id is null
            or stored.customer_record_id is null
            or records.customer_id <> stored.customer_id
            or records.segmentation_date <> stored.segmentation_date
            or (records.segmentation_date is null and stored.segmentation_date is not null)
            or (records.segmentation_date is not null and stored.segmentation_date is null)
    {%- endset -%}
    {%- set changed = run_query(changed_records).columns[0].values()[0] -%}
    {%- if changed > 0 -%}
        {{ segfit_fail("transactions_load is append, but the customers changed since the transactions were stored ("
                       ~ changed ~ " customer records differ)" ~ advice) }}
    {%- endif -%}
    {%- set repeat_query -%}
        select
            (select count(distinct transaction_id) from {{ staged }}) as new_ids,
            (
                select count(distinct stored.transaction_id)
                from {{ checked }} as stored
                where stored.transaction_id in (
                    select staged.transaction_id from {{ staged }} as staged
                    where staged.transaction_id is not null
                )
            ) as stored_ids
    {%- endset -%}
    {%- set repeat = run_query(repeat_query).rows[0] -%}
    {%- if repeat[0] > 0 and repeat[0] == repeat[1] -%}
        {{ segfit_fail("transactions_load is append, but every transaction_id of " ~ cfg['transactions_path']
                       ~ " is already stored (was this file appended before?); nothing was appended") }}
    {%- endif -%}
{%- endmacro %}
