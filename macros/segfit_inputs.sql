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

{#- Text that goes into SQL as a string literal: embedded single quotes are doubled, so a path such as
    /data/O'Brien/customers.csv stays one literal (dbt macros cannot bind parameters). -#}
{% macro segfit_sql_string(text) -%}
    {{- return(adapter.dispatch('segfit_sql_string', 'segfit')(text)) -}}
{%- endmacro %}
{% macro default__segfit_sql_string(text) -%}
    {{- return("'" ~ ((text | string) | replace("'", "''")) ~ "'") -}}
{%- endmacro %}

{#- An identifier from the input (a header): embedded double quotes are doubled, so a header is always one
    quoted name and never SQL. -#}
{% macro segfit_quote_identifier(name) -%}
    {{- return(adapter.dispatch('segfit_quote_identifier', 'segfit')(name)) -}}
{%- endmacro %}
{% macro default__segfit_quote_identifier(name) -%}
    {{- return('"' ~ ((name | string) | replace('"', '""')) ~ '"') -}}
{%- endmacro %}

{#- The file reader is engine-specific, so it is dispatched. -#}
{% macro segfit_file_reader(path, row_numbers=true) -%}
    {{ return(adapter.dispatch('segfit_file_reader', 'segfit')(path, row_numbers)) }}
{%- endmacro %}

{% macro default__segfit_file_reader(path, row_numbers=true) -%}
    {{ segfit_fail("reading files is implemented for DuckDB only; on " ~ target.type
                   ~ " load the file into a table and point the seeds at it (" ~ path ~ ")") }}
{%- endmacro %}

{#- DuckDB expands glob characters in a file name (c[1].csv would read c1.csv, c*.csv a whole folder):
    each of [ * ? is written as a one-character class ([[], [*], [?]), which matches exactly that
    character, so the name is read literally. The same escaping is in python_analysis/warehouse/inputs.py. -#}
{% macro segfit_literal_file_pattern(path) -%}
    {{- return(adapter.dispatch('segfit_literal_file_pattern', 'segfit')(path)) -}}
{%- endmacro %}
{% macro default__segfit_literal_file_pattern(path) -%}
    {{- return(((path | replace('[', '[[]')) | replace('*', '[*]')) | replace('?', '[?]')) -}}
{%- endmacro %}

{#- CSV dialect: explicit RFC 4180 settings (no guessing from a sample, no comment lines), the same as
    the Python pre-check's python_analysis.warehouse.inputs.csv_reader_options. -#}
{% macro duckdb__segfit_file_reader(path, row_numbers=true) -%}
    {%- set literal = segfit_sql_string(segfit_literal_file_pattern(path)) -%}
    {%- if (path | lower).endswith('.parquet') or (path | lower).endswith('.pq') -%}
        read_parquet({{ literal }}{{ ', file_row_number = true' if row_numbers else '' }})
    {%- else -%}
        read_csv(
            {{ literal }}, header = true, all_varchar = true, strict_mode = true,
            delim = '{{ "\t" if (path | lower).endswith(".tsv") else "," }}', quote = '"', escape = '"',
            comment = ''
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
        {#- the dbt source segfit_inputs.<kind> (models/staging/_staging__sources.yml): lineage starts at the
            file, and `--empty` reads none of it. The probe reads only the header (`describe`). -#}
        {%- set relation = segfit_source_relation(kind, path) -%}
        {%- set probe_relation = segfit_file_reader(path, row_numbers=false) -%}
        {%- set label = kind ~ " file " ~ path -%}
    {%- elif cfg['customers_path'] != '' -%}
        {#- the user gave customers but no transactions: the transactions input is absent -#}
        {%- set relation = none -%}
        {%- set present = false -%}
        {%- set label = kind ~ " (not given)" -%}
    {%- elif kind == 'customers' and cfg['demo_variant'] == 'precomputed' -%}
        {%- set relation = segfit_seed_relation('demo_customers_precomputed') -%}
        {%- set label = "demo seed demo_customers_precomputed" -%}
    {%- elif kind == 'customers' -%}
        {%- set relation = segfit_seed_relation('demo_customers') -%}
        {%- set label = "demo seed demo_customers" -%}
    {%- elif cfg['demo_variant'] == 'transactions' -%}
        {%- set relation = segfit_seed_relation('demo_transactions') -%}
        {%- set label = "demo seed demo_transactions" -%}
    {%- else -%}
        {%- set relation = none -%}
        {%- set present = false -%}
        {%- set label = kind ~ " (demo variant precomputed has none)" -%}
    {%- endif -%}

    {%- set known = segfit_known_columns(kind) -%}
    {%- set columns = {} -%}
    {%- set types = {} -%}
    {%- set row_number_sql = segfit_row_number_sql(path) if present else none -%}
    {%- set probe_available = present and execute and segfit_input_exists(path, relation) -%}
    {%- if probe_available -%}
        {%- set probe = run_query("describe select * from " ~ (probe_relation if path != '' else relation)) -%}
        {%- for row in probe.rows -%}
            {%- set original = row[0] -%}
            {%- set normalized = ((original | replace('\ufeff', '')) | trim | lower) -%}
            {%- if normalized in columns -%}
                {{ segfit_fail(label ~ " has two columns named '" ~ normalized
                               ~ "' (headers are matched case-insensitively)") }}
            {%- endif -%}
            {%- if normalized in segfit_reserved_columns(path) -%}
                {{ segfit_fail(label ~ " has a column named '" ~ normalized
                               ~ "', a name segfit reserves for its own use; rename the column") }}
            {%- endif -%}
            {%- do columns.update({normalized: original}) -%}
            {%- do types.update({normalized: (row[1] | string) | upper}) -%}
        {%- endfor -%}
        {%- for required in known['required'] -%}
            {%- if required not in columns -%}
                {{ segfit_fail(label ~ " is missing required column '" ~ required ~ "' (found: " ~ (columns.keys() | list | join(', ')) ~ ")") }}
            {%- endif -%}
        {%- endfor -%}
    {%- elif present -%}
        {#- parse time, or nothing to probe yet (an empty warehouse before the demo seeds are loaded, or a
            file that is not there at compile time): assume the contract's columns, so `dbt compile`,
            `dbt docs generate` and sqlfluff never need data. A build still needs the file (see
            segfit_input_exists). -#}
        {%- for name in known['required'] + known['optional'] -%}
            {%- do columns.update({name: name}) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return({'relation': relation, 'label': label, 'columns': columns, 'types': types, 'present': present,
               'known': known, 'row_number_sql': row_number_sql}) }}
{%- endmacro %}

{#- Can the input be probed for its columns now? A demo seed: when its table exists (not before `dbt seed`
    on an empty warehouse). A file: when it exists. For a command that runs models (build, run, test,
    snapshot, ...) a missing file stops the run with one line naming it; compile, docs and the linter
    fall back to the contract's columns. -#}
{% macro segfit_input_exists(path, relation) -%}
    {{ return(adapter.dispatch('segfit_input_exists', 'segfit')(path, relation)) }}
{%- endmacro %}
{% macro default__segfit_input_exists(path, relation) -%}
    {%- if path == '' -%}
        {{ return(adapter.get_relation(relation.database, relation.schema, relation.identifier) is not none) }}
    {%- endif -%}
    {%- set pattern = segfit_sql_string(segfit_literal_file_pattern(path)) -%}
    {%- set found = run_query("select count(*) from glob(" ~ pattern ~ ")").columns[0].values()[0] -%}
    {%- if found == 0 and flags.WHICH not in ('compile', 'docs', 'generate', 'parse', 'list', 'ls', 'show') -%}
        {{ segfit_fail("input file not found: " ~ path) }}
    {%- endif -%}
    {{ return(found > 0) }}
{%- endmacro %}

{#- Column names an input may not use: staging's own columns (the row number, the label, the `_raw` text
    of each typed column) and, for Parquet, the reader's row-number column. -#}
{% macro segfit_reserved_columns(path) -%}
    {%- set reserved = ['_segfit_row_number', 'source_row_number', 'input_label'] -%}
    {%- for name in ['retention_probability', 'segmentation_date', 'transaction_date', 'amount', 'profit']
                    + segfit_customer_numeric_columns()['doubles'] + segfit_customer_numeric_columns()['integers'] -%}
        {%- do reserved.append(name ~ '_raw') -%}
    {%- endfor -%}
    {%- if (path | lower).endswith(('.parquet', '.pq')) -%}
        {%- do reserved.append('file_row_number') -%}
    {%- endif -%}
    {{ return(reserved) }}
{%- endmacro %}

{#- select list: every known column under its contract name, as given (null text when the input
    lacks it), then the extra columns untouched. Staging trims and types them. -#}
{% macro segfit_input_select(input) -%}
    {%- set known_names = input.known['required'] + input.known['optional'] -%}
    {%- for name in known_names %}
        {% if name in input.columns -%}
            {{ segfit_quote_identifier(input.columns[name]) }} as {{ name }},
        {%- else -%}
            cast(null as {{ segfit_text() }}) as {{ name }},
        {%- endif -%}
    {%- endfor %}
    {%- for normalized, original in input.columns.items() if normalized not in known_names %}
        {{ segfit_quote_identifier(original) }} as {{ segfit_quote_identifier(normalized) }},
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
    {{ return(adapter.dispatch('segfit_staging_materialization', 'segfit')(kind)) }}
{%- endmacro %}
{% macro default__segfit_staging_materialization(kind) -%}
    {%- set path = segfit_config()[kind ~ '_path'] | lower -%}
    {{ return('view' if path == '' or path.endswith(('.parquet', '.pq')) else 'table') }}
{%- endmacro %}
{#- On Spark the demo seeds are read from their CSV files too (spark__segfit_seed_relation). -#}
{% macro spark__segfit_staging_materialization(kind) -%}
    {%- set path = segfit_config()[kind ~ '_path'] | lower -%}
    {{ return('view' if path.endswith(('.parquet', '.pq')) else 'table') }}
{%- endmacro %}

{#- The relation a demo seed is read from. DuckDB: the seed table (it keeps the file's row order). Spark: a
    seed table loaded by INSERTs has no row order, and row numbers are part of the marts (first seen at
    data row N, the latest record), so the seed's CSV file is read in file order instead; the ref keeps the
    seed in the lineage. -#}
{% macro segfit_seed_relation(name) -%}
    {{ return(adapter.dispatch('segfit_seed_relation', 'segfit')(name)) }}
{%- endmacro %}
{% macro default__segfit_seed_relation(name) -%}
    {{ return(ref(name)) }}
{%- endmacro %}
{% macro spark__segfit_seed_relation(name) -%}
    {%- set seed = ref(name) -%}
    {{ return(segfit_file_reader(env_var('DBT_PROJECT_DIR', flags.PROJECT_DIR or '.') ~ '/seeds/' ~ name ~ '.csv')) }}
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
    `case`/`coalesce` and compute it for every row.
    How values are read (the input contract in the README):
    - numbers in text: plain decimal or exponent notation; a digit separator (`1_000`) is not a number;
    - a float32 (REAL) column is read at its shortest decimal text (0.8f -> 0.8, not 0.800000011920929),
      so a boundary such as the anomaly threshold behaves as for the decimal value that was written;
    - timestamps: a UTC offset or zone in text is converted to UTC, a time-zone-aware column is read in
      UTC (the session time zone is UTC, profiles/profiles.yml), a naive value is taken as written;
      the keyword `epoch` is not a date (it is null here, so the row is quarantined as not a valid date). -#}
{% macro segfit_typed_columns(double_columns, timestamp_columns, input=none) -%}
    {%- set types = input.types if input is not none else {} -%}
    {%- for name in double_columns + timestamp_columns %}
        {%- set column_type = types.get(name, 'VARCHAR') -%}
        {%- set is_text = column_type in ('VARCHAR', 'STRING') or column_type.startswith('VARCHAR(') -%}
        {%- if name in double_columns %}
            {%- if is_text %}
                {%- set typed = segfit_safe_cast_number_text(name, segfit_double()) %}
            {%- elif column_type in ('FLOAT', 'REAL', 'FLOAT4') %}
                {%- set typed = segfit_safe_cast('cast(' ~ name ~ ' as ' ~ segfit_text() ~ ')', segfit_double()) %}
            {%- else %}
                {%- set typed = segfit_safe_cast(name, segfit_double()) %}
            {%- endif %}
        {%- else %}
            {%- if is_text %}
                {%- set parsed -%}
                    coalesce(
                        {{ segfit_safe_cast_timestamp_text(name) }},
                        {{ segfit_safe_cast_timestamp_text('trim(' ~ name ~ ')') }}
                    )
                {%- endset %}
            {%- else %}
                {%- set parsed = segfit_safe_cast(name, dbt.type_timestamp()) %}
            {%- endif %}
            {%- set typed -%}
                case
                    when {{ parsed }} = cast('1970-01-01' as {{ dbt.type_timestamp() }})
                        and lower(trim(cast({{ name }} as {{ segfit_text() }}))) = 'epoch'
                        then null
                    else {{ parsed }}
                end
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
        {{ segfit_quote_identifier(normalized) }},
    {%- endfor %}
{%- endmacro %}

{#- Plausibility bounds shared by the quarantine models. "In the future" means later than the build's
    start (UTC) plus the grace days. A literal, not `now()`: the engine folds it to a constant and can
    skip the check with the input's date statistics, where `now() + interval` is evaluated for each of
    20M rows. -#}
{% macro segfit_plausible_bounds() -%}
    {%- set cfg = segfit_config() -%}
    {%- set run_start = "cast('" ~ run_started_at.strftime('%Y-%m-%d %H:%M:%S') ~ "' as "
                        ~ dbt.type_timestamp() ~ ")" -%}
    {{ return({
        'earliest_date': "cast('" ~ cfg['earliest_plausible_date'] ~ "' as " ~ dbt.type_timestamp() ~ ")",
        'earliest_date_text': cfg['earliest_plausible_date'],
        'latest_date': dbt.dateadd('day', cfg['future_transaction_grace_days'] | int, run_start),
        'max_abs_value': cfg['max_abs_value'],
        'max_abs_value_text': '%g' | format(cfg['max_abs_value']),
    }) }}
{%- endmacro %}

{#- `when` branches for a parsed (non-null) date: infinite, before the earliest plausible date, future. -#}
{% macro segfit_date_range_checks(expression, bounds, name=none) -%}
    {%- set name = name or expression -%}
    when {{ expression }} in ({{ segfit_infinite_timestamp_values() | join(', ') }})
        then '{{ name }} is not a finite date'
    when {{ expression }} < {{ bounds.earliest_date }}
        then '{{ name }} is before {{ bounds.earliest_date_text }} (var earliest_plausible_date)'
    when {{ expression }} > {{ bounds.latest_date }} then '{{ name }} is in the future'
{%- endmacro %}

{#- a `when` branch for a finite number beyond the realistic bound (var max_abs_value) -#}
{% macro segfit_value_bound_check(expression, bounds, name=none) -%}
    {%- set name = name or expression -%}
    when abs({{ expression }}) > {{ bounds.max_abs_value }}
        then '{{ name }} is beyond the plausible bound |{{ name }}| <= {{ bounds.max_abs_value_text }} (var max_abs_value)'
{%- endmacro %}

{#- The clean-rows models (int_customers_validated, int_transactions_validated) are views on DuckDB (the big
    input is not copied once more). On Spark they are tables: a view lives only in the session that built
    it, and the checks read the clean rows after the build, from their Parquet files. -#}
{% macro segfit_clean_rows_materialization() -%}
    {{ return(adapter.dispatch('segfit_clean_rows_materialization', 'segfit')()) }}
{%- endmacro %}
{% macro default__segfit_clean_rows_materialization() -%}
    {{ return('view') }}
{%- endmacro %}
{% macro spark__segfit_clean_rows_materialization() -%}
    {{ return('table') }}
{%- endmacro %}

{#- The relation an input file is read from: the file reader on the path this run was given, rendered when
    the model runs, and the source() call keeps the file in the lineage. The source's own location (its
    external_location, which the source tests and `dbt source freshness` read) is fixed while dbt parses,
    and under the segfit CLI it is a stand-in name (_staging__sources.yml), so staging reads the path itself.
    The reader is the source relation's location (dbt-duckdb's `external`), so the relation renders as
    dbt's own: `dbt build --empty` reads none of the file (dbt gives the source a limit of 0). -#}
{% macro segfit_source_relation(kind, path) -%}
    {{ return(adapter.dispatch('segfit_source_relation', 'segfit')(kind, path)) }}
{%- endmacro %}
{% macro default__segfit_source_relation(kind, path) -%}
    {{ return(source('segfit_inputs', kind).incorporate(external=segfit_file_reader(path))) }}
{%- endmacro %}
