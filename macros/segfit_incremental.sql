{#-
    Incremental daily loads (var transactions_load = append): the new transactions file is added to the
    stored, checked transactions (int_transactions_checked) and only the customer records it affects are
    recomputed (int_customer_transactions_aggregated), and customer_segment_fit rebuilds only those records
    when its other inputs are unchanged (segfit_fit_keeps_stored_rows). Everything else is rebuilt as in a
    full build.
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

{#- customer_segment_fit on an appending run (incremental on DuckDB, delete+insert on customer_record_id).
    A record's row depends on its transaction aggregates, on its own customer-side columns, on its segment's
    retention statistics (all records' customer-side columns), on the vars, and, for value_mismatch_z only,
    on the whole population's revenue and score. The append recomputes the aggregates of the records the new
    transactions can change (int_customer_transactions_aggregated: transactions_through_row = its maximum).
    So when every customer-side input is the one the stored rows were computed from, the other records'
    rows are kept as stored: only the recomputed records are rebuilt (with the stored segment statistics,
    which the same customer side gives), and value_mismatch_z is then recomputed for every row
    (segfit_fit_population_update, the model's post-hook). The data decides, not this run's vars:
    - every var but transactions_path and transactions_load equals the previous build's
      (marts.build_metadata.vars_json);
    - the customer records (int_customer_records_deduplicated) are the stored rows' records, with the same
      customer-side columns (ids, name, dates, row number, segment, retention, score, and a given
      lifecycle stage or seasonal preference).
    Otherwise every record is recomputed (and replaces its stored row). Returns true to keep, after one log line. -#}
{% macro segfit_fit_keeps_stored_rows(fit) -%}
    {%- set cfg = segfit_config() -%}
    {%- set marts_schema = generate_schema_name('marts', none) | trim -%}
    {%- set metadata = adapter.get_relation(fit.database, marts_schema, 'build_metadata') -%}
    {%- set reason = namespace(text='') -%}
    {%- if metadata is none -%}
        {%- set reason.text = 'no marts.build_metadata describes the stored rows' -%}
    {%- else -%}
        {%- set stored_vars_json = run_query(
            "select vars_json from " ~ metadata ~ " where source = 'transactions'").columns[0].values() -%}
        {%- if stored_vars_json | length != 1 -%}
            {%- set reason.text = 'marts.build_metadata does not describe one earlier build' -%}
        {%- else -%}
            {%- set stored = fromjson(stored_vars_json[0]) -%}
            {%- for name in cfg if name not in ('transactions_path', 'transactions_load') and not reason.text -%}
                {%- if (stored.get(name) | string) != (cfg[name] | string) -%}
                    {%- set reason.text = "var '" ~ name ~ "' changed since the stored rows were computed" -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
    {%- if not reason.text -%}
        {%- set changed_records -%}
            select count(*)
            from {{ segfit_intermediate_relation(fit, 'int_customer_records_deduplicated') }} as records
            full outer join {{ fit }} as stored
                on records.customer_record_id = stored.customer_record_id
            where
                records.customer_record_id is null
                or stored.customer_record_id is null
                or records.customer_id is distinct from stored.customer_id
                or records.subsidiary_id is distinct from stored.subsidiary_id
                or records.customer_name is distinct from stored.customer_name
                or records.segmentation_date is distinct from stored.segmentation_date
                or records.source_row_number is distinct from stored.source_row_number
                or records.profitability_segment is distinct from stored.profitability_segment
                or records.retention_probability is distinct from stored.retention_probability
                or records.comprehensive_customer_score is distinct from stored.comprehensive_customer_score
                or (records.lifecycle_stage is not null) is distinct from (stored.lifecycle_stage_source = 'given')
                or (records.lifecycle_stage is not null and records.lifecycle_stage is distinct from stored.lifecycle_stage)
                or (records.seasonal_preference is not null)
                is distinct from (stored.seasonal_preference_source = 'given')
                or (
                    records.seasonal_preference is not null
                    and records.seasonal_preference is distinct from stored.seasonal_preference
                )
        {%- endset -%}
        {%- set changed = run_query(changed_records).columns[0].values()[0] -%}
        {%- if changed > 0 -%}
            {%- set reason.text = changed ~ " customer records differ from the stored rows' customer-side columns" -%}
        {%- endif -%}
    {%- endif -%}
    {%- if reason.text -%}
        {{ log("segfit: customer_segment_fit recomputes every record: " ~ reason.text, info=true) }}
        {{ return(false) }}
    {%- endif -%}
    {{ log("segfit: customer_segment_fit keeps the stored rows of the records whose transactions did not change"
           ~ " (value_mismatch_z is recomputed for all)", info=true) }}
    {{ return(true) }}
{%- endmacro %}

{#- An intermediate table beside a mart, read when the mart runs incrementally (customer_segment_fit already
    depends on it through int_customer_features_computed; a ref() here would need its own depends_on, and
    then every unit test of the mart a fixture for it). -#}
{% macro segfit_intermediate_relation(mart, name) -%}
    {%- set relation = adapter.get_relation(mart.database, generate_schema_name('intermediate', none) | trim, name) -%}
    {%- if relation is none -%}
        {{ segfit_fail("customer_segment_fit is incremental, but intermediate." ~ name ~ " is missing") }}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}

{#- The records whose aggregates this run recomputed (and, when it recomputed none, the last run's: a
    superset is always exact, since their rows are recomputed from the current inputs). -#}
{% macro segfit_recomputed_records() -%}
    {%- set aggregated = segfit_intermediate_relation(this, 'int_customer_transactions_aggregated') -%}
    select customer_record_id
    from {{ aggregated }}
    where transactions_through_row = (select max(transactions_through_row) from {{ aggregated }})
{%- endmacro %}

{#- customer_segment_fit's post-hook: on an appending (incremental) run, value_mismatch_z of every row from
    the population's revenue and score as the table now holds them (segfit_value_mismatch_z, as in the model). -#}
{% macro segfit_fit_population_update() -%}
    {%- if not is_incremental() -%}
        {{ return('') }}
    {%- endif -%}
    update {{ this }}
    set value_mismatch_z = cast({{ segfit_value_mismatch_z(
        '(select avg(total_revenue) from ' ~ this ~ ')',
        '(select stddev_pop(total_revenue) from ' ~ this ~ ')',
        '(select avg(comprehensive_customer_score) from ' ~ this ~ ')',
        '(select stddev_pop(comprehensive_customer_score) from ' ~ this ~ ')') }} as {{ segfit_double() }})
{%- endmacro %}

{#- value_mismatch_z of a customer_segment_fit row: how far its revenue and its score sit apart, each in
    population SDs; the model and its append post-hook give the population's mean and SD as SQL expressions. -#}
{% macro segfit_value_mismatch_z(revenue_mean, revenue_std, score_mean, score_std) -%}
    abs(
        (total_revenue - {{ revenue_mean }}) / nullif({{ revenue_std }}, 0)
        - (comprehensive_customer_score - {{ score_mean }}) / nullif({{ score_std }}, 0)
    )
{%- endmacro %}
