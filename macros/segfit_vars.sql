{#-
    Every var segfit reads goes through segfit_config(), which validates it and fails the run with a
    message naming the var. Paths are read literally: they reach SQL only as escaped string literals with
    glob characters escaped (segfit_sql_string, segfit_literal_file_pattern); a control character or an
    unsupported extension is rejected.
    dbt renders Jinja inside --vars values before any macro sees them, so the segfit CLI never passes a
    path as a var: it sets SEGFIT_CUSTOMERS_PATH / SEGFIT_TRANSACTIONS_PATH, which env_var() returns as
    they are (a file named {{7*7}}.csv is read as that file), and it refuses other var values with
    Jinja markers before dbt starts (python_analysis.pipeline.BuildOptions).
-#}

{% macro segfit_fail(message) -%}
    {{ exceptions.raise_compiler_error("segfit: " ~ message) }}
{%- endmacro %}

{% macro segfit_number_var(name, minimum=none, maximum=none) -%}
    {%- set raw = var(name) -%}
    {%- if raw is boolean or raw is none -%}
        {{ segfit_fail("var '" ~ name ~ "' must be a number, got '" ~ raw ~ "'") }}
    {%- endif -%}
    {%- if raw is number -%}
        {%- set value = raw -%}
    {%- else -%}
        {%- set text = (raw | string) | trim -%}
        {#- plain decimal or exponent notation, with an optional sign: 1, +1, -0.5, .5, 1e20, 1e+3, 2.5E-3 -#}
        {%- if not modules.re.match('^[-+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][-+]?[0-9]+)?$', text) -%}
            {{ segfit_fail("var '" ~ name ~ "' must be a number, got '" ~ raw ~ "'") }}
        {%- endif -%}
        {%- set value = text | float -%}
    {%- endif -%}
    {%- if value != value or value > 1.7976931348623157e308 or value < -1.7976931348623157e308 -%}
        {{ segfit_fail("var '" ~ name ~ "' must be a finite number, got '" ~ raw ~ "'") }}
    {%- endif -%}
    {%- if minimum is not none and value < minimum -%}
        {{ segfit_fail("var '" ~ name ~ "' must be >= " ~ minimum ~ ", got " ~ value) }}
    {%- endif -%}
    {%- if maximum is not none and value > maximum -%}
        {{ segfit_fail("var '" ~ name ~ "' must be <= " ~ maximum ~ ", got " ~ value) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{% macro segfit_choice_var(name, choices) -%}
    {%- set value = (var(name) | string) | trim | lower -%}
    {%- if value not in choices -%}
        {{ segfit_fail("var '" ~ name ~ "' must be one of " ~ (choices | join(', ')) ~ ", got '" ~ var(name) ~ "'") }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#- The path var when given (plain dbt), else the environment variable SEGFIT_<NAME> (the segfit CLI).
    While dbt parses the project (execute is false), the segfit CLI's SEGFIT_PARSE_INPUTS gives a stand-in
    instead: '<kind>.<extension>' when a file is given, else ''. What parsing decides from a path (is a file
    given; is it text or Parquet: the materializations, the refs) is all in it, and it stays the same from one
    daily file to the next. dbt re-parses every file that read an env var whose value changed, so reading
    the path itself while parsing made each new day's file name re-parse every model (and its YAML); the
    models' SQL is rendered when they run (execute is true), from the real path. -#}
{% macro segfit_path_var(name) -%}
    {%- set value = ((var(name) or '') | string) | trim -%}
    {%- if value == '' and not execute and env_var('SEGFIT_PARSE_INPUTS', '') != '' -%}
        {{ return(fromjson(env_var('SEGFIT_PARSE_INPUTS')).get(name, '')) }}
    {%- endif -%}
    {%- if value == '' -%}
        {%- set value = env_var('SEGFIT_' ~ (name | upper), '') -%}
    {%- endif -%}
    {%- if value == '' -%}
        {{ return('') }}
    {%- endif -%}
    {%- if modules.re.search("[\\x00-\\x1f\\x7f]", value) -%}
        {{ segfit_fail("var '" ~ name ~ "' contains a control character (e.g. a newline), which is not allowed"
                       ~ " in a path: " ~ (value | replace('\n', '\\n'))) }}
    {%- endif -%}
    {%- if not modules.re.search('\\.(csv|tsv|txt|csv\\.gz|parquet|pq)$', value | lower) -%}
        {{ segfit_fail("var '" ~ name ~ "' must name a .csv, .csv.gz, .tsv, .txt or .parquet file, got " ~ value) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#- A calendar date YYYY-MM-DD (a YAML date or a string). -#}
{% macro segfit_date_var(name) -%}
    {%- set text = (var(name) | string) | trim -%}
    {%- if not modules.re.match('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$', text) -%}
        {{ segfit_fail("var '" ~ name ~ "' must be a date YYYY-MM-DD, got '" ~ var(name) ~ "'") }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}

{% macro segfit_text_list_var(name) -%}
    {%- set raw = var(name) -%}
    {%- if raw is string -%}
        {%- set raw = (raw.split(',') if raw | trim != '' else []) -%}
    {%- endif -%}
    {%- set values = [] -%}
    {%- for item in raw -%}
        {%- set text = (item | string) | trim -%}
        {%- if modules.re.search("['\";\\n\\r\\x00]", text) -%}
            {{ segfit_fail("var '" ~ name ~ "' value '" ~ text
                           ~ "' contains a quote, semicolon or control character") }}
        {%- endif -%}
        {%- do values.append(text) -%}
    {%- endfor -%}
    {{ return(values) }}
{%- endmacro %}

{% macro segfit_config() -%}
    {%- set cfg = {
        'customers_path': segfit_path_var('customers_path'),
        'transactions_path': segfit_path_var('transactions_path'),
        'transactions_load': segfit_choice_var('transactions_load', ['full', 'store', 'append']),
        'demo_variant': segfit_choice_var('demo_variant', ['transactions', 'precomputed']),
        'allowed_segments': segfit_text_list_var('allowed_segments'),
        'customer_grain': segfit_choice_var('customer_grain', ['all', 'latest']),
        'anomaly_threshold': segfit_number_var('anomaly_threshold', 0, none),
        'anomaly_threshold_mode': segfit_choice_var('anomaly_threshold_mode', ['absolute', 'relative', 'zscore']),
        'rule_seasonality_cv': segfit_number_var('rule_seasonality_cv'),
        'rule_transaction_value_volatility': segfit_number_var('rule_transaction_value_volatility'),
        'rule_txn_consistency_error': segfit_number_var('rule_txn_consistency_error'),
        'seasonal_peak_min_share': segfit_number_var('seasonal_peak_min_share', 0.25, 1),
        'lifecycle_mature_days': segfit_number_var('lifecycle_mature_days', 0, none),
        'lifecycle_at_risk_days': segfit_number_var('lifecycle_at_risk_days', 0, none),
        'future_transaction_grace_days': segfit_number_var('future_transaction_grace_days', 0, none),
        'earliest_plausible_date': segfit_date_var('earliest_plausible_date'),
        'max_abs_value': segfit_number_var('max_abs_value', 0, 1e300),
    } -%}
    {{ return(cfg) }}
{%- endmacro %}
