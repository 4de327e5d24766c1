{#-
    History across builds. Every segfit build is a new DuckDB file (see README, "How a build reaches
    readers"), so the snapshot table starts empty unless it is carried over. The CLI sets
    SEGFIT_PREVIOUS_BUILD to the file the published warehouse points at; this on-run-start hook copies
    that file's snapshot table into the new file once, before the snapshot runs. The path is passed as a
    SQL string literal with its quotes doubled; env_var() values are not rendered as Jinja.
-#}
{% macro segfit_carry_forward_history() -%}
    {{ return(adapter.dispatch('segfit_carry_forward_history', 'segfit')()) }}
{%- endmacro %}

{% macro default__segfit_carry_forward_history() -%}
    {{ return('') }}
{%- endmacro %}

{% macro duckdb__segfit_carry_forward_history() -%}
    {%- set previous = env_var('SEGFIT_PREVIOUS_BUILD', '') -%}
    {%- if not execute or previous == '' or flags.WHICH not in ('build', 'snapshot', 'run') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set history = 'customer_segment_fit_history' -%}
    {%- set exists_here = run_query(
        "select count(*) from duckdb_tables() where database_name = current_database() "
        ~ "and schema_name = 'snapshots' and table_name = '" ~ history ~ "'").columns[0].values()[0] -%}
    {%- if exists_here > 0 -%}
        {{ return('') }}
    {%- endif -%}
    {%- do run_query("attach " ~ segfit_sql_string(previous) ~ " as segfit_previous (read_only)") -%}
    {%- set exists_there = run_query(
        "select count(*) from duckdb_tables() where database_name = 'segfit_previous' "
        ~ "and schema_name = 'snapshots' and table_name = '" ~ history ~ "'").columns[0].values()[0] -%}
    {%- if exists_there > 0 -%}
        {%- do run_query("create schema if not exists snapshots") -%}
        {%- do run_query("create table snapshots." ~ history
                         ~ " as select * from segfit_previous.snapshots." ~ history) -%}
        {#- dbt listed the relations before this hook ran: tell its cache, so the snapshot updates the table -#}
        {%- do adapter.cache_added(api.Relation.create(database=target.database, schema='snapshots',
                                                        identifier=history, type='table')) -%}
        {{ log("segfit: carried the segment-fit history over from the previous build", info=true) }}
    {%- endif -%}
    {%- do run_query("detach segfit_previous") -%}
    {{ return('') }}
{%- endmacro %}

{#- What marts.build_metadata says about one input, as SQL literals: its label, and the file name, size
    and SHA-256 the segfit CLI measured (SEGFIT_INPUT_FINGERPRINTS, JSON), or null. -#}
{% macro segfit_input_description(kind) -%}
    {%- set cfg = segfit_config() -%}
    {%- set path = cfg[kind ~ '_path'] -%}
    {%- if path != '' -%}
        {%- set label = path -%}
    {%- elif cfg['customers_path'] != '' -%}
        {%- set label = 'not given' -%}
    {%- elif kind == 'transactions' and cfg['demo_variant'] == 'precomputed' -%}
        {%- set label = 'not given (demo variant precomputed)' -%}
    {%- else -%}
        {%- set label = 'demo seeds (' ~ cfg['demo_variant'] ~ ' variant)' -%}
    {%- endif -%}
    {#- read when the model runs, not while dbt parses it: every build's hashes differ, and dbt re-parses a
        file whose env vars changed -#}
    {%- set fingerprints = (fromjson(env_var('SEGFIT_INPUT_FINGERPRINTS', '{}')) or {}) if execute else {} -%}
    {%- set measured = fingerprints.get(kind, {}) if path != '' else {} -%}
    {%- set size = measured.get('size_bytes') -%}
    {{ return({
        'label': segfit_sql_string(label),
        'file_name': segfit_sql_string(measured['name']) if measured.get('name') else 'null',
        'size_bytes': (size | int) if size is not none else 'null',
        'sha256': segfit_sql_string(measured['sha256']) if measured.get('sha256') else 'null',
    }) }}
{%- endmacro %}

{#- build_metadata's input label from a staged row's input_label (see segfit_input): the path for a file,
    "demo seeds (<variant> variant)" for the demo seeds. -#}
{% macro segfit_metadata_label(staged_label) -%}
    case
        when {{ staged_label }} = 'demo seed demo_customers_precomputed' then 'demo seeds (precomputed variant)'
        when {{ staged_label }} like 'demo seed %' then 'demo seeds (transactions variant)'
        when {{ staged_label }} like 'customers file %' then substr({{ staged_label }}, {{ 'customers file ' | length + 1 }})
        when {{ staged_label }} like 'transactions file %'
            then substr({{ staged_label }}, {{ 'transactions file ' | length + 1 }})
    end
{%- endmacro %}
