{#-
    Input resolution. A source is either a file named by a var (customers_path / transactions_path),
    read by the adapter's file reader with every column as text, or - when no path is given - the demo
    seeds. Either way staging sees text columns plus `_segfit_row_number`, the 1-based data row of the
    input, so every row can be traced back to its line in the file.
-#}

{% macro segfit_known_columns(kind) -%}
    {{ return({
        'customers': {
            'required': ['customer_id', 'profitability_segment', 'retention_probability'],
            'optional': ['subsidiary_id', 'customer_name', 'segmentation_date', 'comprehensive_customer_score',
                         'lifecycle_stage', 'seasonal_preference', 'total_revenue', 'net_profit',
                         'transaction_count', 'avg_transactions_per_month', 'transaction_value_volatility',
                         'q1_transactions', 'q2_transactions', 'q3_transactions', 'q4_transactions',
                         'customer_age_days'],
        },
        'transactions': {
            'required': ['transaction_id', 'customer_id', 'transaction_date', 'amount'],
            'optional': ['profit'],
        },
    }[kind]) }}
{%- endmacro %}

{#- The customers' optional typed columns, in one place for staging, validation and the quarantine mart. -#}
{% macro segfit_customer_numeric_columns() -%}
    {{ return({
        'doubles': ['comprehensive_customer_score', 'total_revenue', 'net_profit',
                    'avg_transactions_per_month', 'transaction_value_volatility'],
        'integers': ['transaction_count', 'q1_transactions', 'q2_transactions', 'q3_transactions',
                     'q4_transactions', 'customer_age_days'],
    }) }}
{%- endmacro %}

{#- The file reader is engine-specific, so it is dispatched. -#}
{% macro segfit_file_reader(path) -%}
    {{ return(adapter.dispatch('segfit_file_reader', 'segfit')(path)) }}
{%- endmacro %}

{% macro default__segfit_file_reader(path) -%}
    {{ segfit_fail("reading files is implemented for DuckDB only; on " ~ target.type ~ " load the file into a table and point the seeds at it (" ~ path ~ ")") }}
{%- endmacro %}

{% macro duckdb__segfit_file_reader(path) -%}
    {%- if (path | lower).endswith('.parquet') or (path | lower).endswith('.pq') -%}
        read_parquet('{{ path }}', file_row_number = true)
    {%- else -%}
        read_csv(
            '{{ path }}', header = true, all_varchar = true, strict_mode = true,
            delim = '{{ "\t" if (path | lower).endswith(".tsv") else "," }}'
        )
    {%- endif -%}
{%- endmacro %}

{#- Returns {'relation': sql-from-clause, 'label': human name, 'columns': {normalized: original}, 'present': bool} -#}
{% macro segfit_input(kind) -%}
    {%- set cfg = segfit_config() -%}
    {%- set path = cfg[kind ~ '_path'] -%}
    {%- set label = '' -%}
    {%- set present = true -%}
    {%- if path != '' -%}
        {%- set relation = segfit_file_reader(path) -%}
        {%- set label = kind ~ " file " ~ path -%}
    {%- elif cfg['customers_path'] != '' -%}
        {#- the user gave customers but no transactions: the transactions input is absent -#}
        {%- set relation = none -%}
        {%- set present = false -%}
        {%- set label = kind ~ " (not given)" -%}
    {%- elif kind == 'customers' and cfg['demo_variant'] == 'precomputed' -%}
        {%- set relation = ref('demo_customers_precomputed') -%}
        {%- set label = "demo seed demo_customers_precomputed" -%}
    {%- elif kind == 'customers' -%}
        {%- set relation = ref('demo_customers') -%}
        {%- set label = "demo seed demo_customers" -%}
    {%- elif cfg['demo_variant'] == 'transactions' -%}
        {%- set relation = ref('demo_transactions') -%}
        {%- set label = "demo seed demo_transactions" -%}
    {%- else -%}
        {%- set relation = none -%}
        {%- set present = false -%}
        {%- set label = kind ~ " (demo variant precomputed has none)" -%}
    {%- endif -%}

    {%- set known = segfit_known_columns(kind) -%}
    {%- set columns = {} -%}
    {%- set row_number_sql = segfit_row_number_sql(path) if present else none -%}
    {%- set internal = ['file_row_number'] if (path | lower).endswith(('.parquet', '.pq')) else [] -%}
    {%- if present and execute -%}
        {%- set probe = run_query("select * from " ~ relation ~ " limit 0") -%}
        {%- for original in probe.column_names if original not in internal -%}
            {%- set normalized = ((original | replace('\ufeff', '')) | trim | lower) -%}
            {%- do columns.update({normalized: original}) -%}
        {%- endfor -%}
        {%- for required in known['required'] -%}
            {%- if required not in columns -%}
                {{ segfit_fail(label ~ " is missing required column '" ~ required ~ "' (found: " ~ (columns.keys() | list | join(', ')) ~ ")") }}
            {%- endif -%}
        {%- endfor -%}
    {%- elif present -%}
        {#- parse time: assume the full contract so the model compiles -#}
        {%- for name in known['required'] + known['optional'] -%}
            {%- do columns.update({name: name}) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return({'relation': relation, 'label': label, 'columns': columns, 'present': present, 'known': known,
               'row_number_sql': row_number_sql}) }}
{%- endmacro %}

{#- select list: every known column under its contract name, as given (null text when the input
    lacks it), then the extra columns untouched. Staging trims and types them. -#}
{% macro segfit_input_select(input) -%}
    {%- set known_names = input.known['required'] + input.known['optional'] -%}
    {%- for name in known_names %}
        {% if name in input.columns -%}
            {{ adapter.quote(input.columns[name]) }} as {{ name }},
        {%- else -%}
            cast(null as {{ segfit_text() }}) as {{ name }},
        {%- endif -%}
    {%- endfor %}
    {%- for normalized, original in input.columns.items() if normalized not in known_names %}
        {{ adapter.quote(original) }} as {{ adapter.quote(normalized) }},
    {%- endfor %}
{%- endmacro %}

{#- The 1-based data row of each input row. Parquet has its own row numbers; for text files and
    tables the scan order is the file order (DuckDB preserves insertion order). -#}
{% macro segfit_row_number_sql(path) -%}
    {{ return(adapter.dispatch('segfit_row_number_sql', 'segfit')(path)) }}
{%- endmacro %}
{% macro default__segfit_row_number_sql(path) -%}
    {{ return('row_number() over ()') }}
{%- endmacro %}
{% macro duckdb__segfit_row_number_sql(path) -%}
    {%- if (path | lower).endswith(('.parquet', '.pq')) -%}
        {{ return('file_row_number + 1') }}
    {%- else -%}
        {{ return('row_number() over ()') }}
    {%- endif -%}
{%- endmacro %}

{#- a zero-row relation with the known columns as text, for an input that was not given -#}
{% macro segfit_empty_input(input) -%}
    select
    {%- for name in input.known['required'] + input.known['optional'] %}
        cast(null as {{ segfit_text() }}) as {{ name }},
    {%- endfor %}
        cast(null as {{ dbt.type_bigint() }}) as _segfit_row_number
    from (select 1 as one) as no_rows
    where 1 = 0
{%- endmacro %}

{#- Does this run have a transactions input? Decided from vars alone (no query). -#}
{% macro segfit_has_transactions() -%}
    {%- set cfg = segfit_config() -%}
    {%- if cfg['transactions_path'] != '' -%}
        {{ return(true) }}
    {%- elif cfg['customers_path'] != '' -%}
        {{ return(false) }}
    {%- else -%}
        {{ return(cfg['demo_variant'] == 'transactions') }}
    {%- endif -%}
{%- endmacro %}

{#- Staging is a view over the input, except for a text file (CSV/TSV): that is parsed once into a
    table, because the clean-rows views downstream read staging again and parsing text is the slow part.
    Parquet and the demo seeds are read in place. -#}
{% macro segfit_staging_materialization(kind) -%}
    {%- set path = segfit_config()[kind ~ '_path'] | lower -%}
    {{ return('view' if path == '' or path.endswith(('.parquet', '.pq')) else 'table') }}
{%- endmacro %}

{#- staging body shared by stg_customers and stg_transactions: text columns, typed columns, row numbers -#}
{% macro segfit_staged_input(input) -%}
    {%- if input.present %}
    select
        {{- segfit_input_select(input) }}
        {{ input.row_number_sql }} as _segfit_row_number
    from {{ input.relation }}
    {%- else %}
    {{ segfit_empty_input(input) }}
    {%- endif %}
{%- endmacro %}

{#- For each typed column: `<name>`, the typed value (null when blank or unparseable), and `<name>_raw`,
    the trimmed text as given (null when blank) for the rows whose typed value is null: that is the only
    place the checks read it. Typed inputs (Parquet) cast without a text round trip, and the text is only
    made for the few rows that need it: turning 20M numbers or dates into text costs more than checking
    them. Each expression names `cast(<name> as text)` once, so the engine cannot hoist it out of the
    `case`/`coalesce` and compute it for every row. -#}
{% macro segfit_typed_columns(double_columns, timestamp_columns) -%}
    {%- for name in double_columns + timestamp_columns %}
        {%- if name in double_columns %}
            {%- set typed = segfit_safe_cast(name, segfit_double()) %}
        {%- else %}
            {%- set typed -%}
                coalesce(
                    {{ segfit_safe_cast(name, dbt.type_timestamp()) }},
                    {{ segfit_safe_cast('trim(cast(' ~ name ~ ' as ' ~ segfit_text() ~ '))', dbt.type_timestamp()) }}
                )
            {%- endset %}
        {%- endif %}
        {{ typed }} as {{ name }},
        case
            when {{ typed }} is null then nullif(trim(cast({{ name }} as {{ segfit_text() }})), '')
        end as {{ name }}_raw,
    {%- endfor %}
{%- endmacro %}

{#- the input's extra (non-contract) columns, passed through untouched -#}
{% macro segfit_passthrough_columns(input) -%}
    {%- set known_names = input.known['required'] + input.known['optional'] -%}
    {%- for normalized in input.columns.keys() if normalized not in known_names %}
        {{ adapter.quote(normalized) }},
    {%- endfor %}
{%- endmacro %}
