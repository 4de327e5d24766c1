{#- Type names and small expressions that differ between engines, dispatched so a new adapter
    (e.g. Spark) only overrides these. Models never write engine-specific syntax themselves. -#}

{% macro segfit_double() -%}{{ return(adapter.dispatch('segfit_double', 'segfit')()) }}{%- endmacro %}
{% macro default__segfit_double() -%}double{%- endmacro %}

{% macro segfit_text() -%}{{ return(adapter.dispatch('segfit_text', 'segfit')()) }}{%- endmacro %}
{% macro default__segfit_text() -%}{{ return(dbt.type_string()) }}{%- endmacro %}

{% macro segfit_median(expression) -%}
    {{ return(adapter.dispatch('segfit_median', 'segfit')(expression)) }}
{%- endmacro %}
{% macro default__segfit_median(expression) -%}
    percentile_cont(0.5) within group (order by {{ expression }})
{%- endmacro %}

{% macro segfit_quarter(expression) -%}
    {{ return(adapter.dispatch('segfit_quarter', 'segfit')(expression)) }}
{%- endmacro %}
{% macro default__segfit_quarter(expression) -%}
    extract(quarter from {{ expression }})
{%- endmacro %}

{#- The calendar month as one integer (year * 12 + month): counting distinct integers is much cheaper
    than counting distinct truncated timestamps. -#}
{% macro segfit_month_index(expression) -%}
    {{ return(adapter.dispatch('segfit_month_index', 'segfit')(expression)) }}
{%- endmacro %}
{% macro default__segfit_month_index(expression) -%}
    cast(extract(year from {{ expression }}) * 12 + extract(month from {{ expression }}) as integer)
{%- endmacro %}

{#- A blank or whitespace-only text becomes null; surrounding spaces are trimmed. Only texts that start
    or end with a space are trimmed: trim() copies every string, and ids are 20M strings. -#}
{% macro segfit_clean_text(expression) -%}
    {%- set text = 'cast(' ~ expression ~ ' as ' ~ segfit_text() ~ ')' -%}
    case
        when {{ text }} like ' %' or {{ text }} like '% ' then nullif(trim({{ text }}), '')
        else nullif({{ text }}, '')
    end
{%- endmacro %}

{#- dbt_utils.generate_surrogate_key, re-implemented (the package hub is unreachable here). -#}
{% macro segfit_surrogate_key(fields) -%}
    {%- set parts = [] -%}
    {%- for field in fields -%}
        {%- do parts.append("coalesce(cast(" ~ field ~ " as " ~ segfit_text() ~ "), '_segfit_null_')") -%}
        {%- if not loop.last %}{% do parts.append("'-'") %}{% endif -%}
    {%- endfor -%}
    {{ dbt.hash(dbt.concat(parts)) }}
{%- endmacro %}

{#- A cast that yields null instead of failing. dbt.safe_cast is a plain cast on dbt-duckdb, so
    DuckDB (and Spark 3.2+) get their try_cast here; other engines fall back to dbt.safe_cast. -#}
{% macro segfit_safe_cast(expression, type) -%}
    {{ return(adapter.dispatch('segfit_safe_cast', 'segfit')(expression, type)) }}
{%- endmacro %}
{% macro default__segfit_safe_cast(expression, type) -%}
    {{ dbt.safe_cast(expression, type) }}
{%- endmacro %}
{% macro duckdb__segfit_safe_cast(expression, type) -%}
    try_cast({{ expression }} as {{ type }})
{%- endmacro %}
{% macro spark__segfit_safe_cast(expression, type) -%}
    try_cast({{ expression }} as {{ type }})
{%- endmacro %}

{#- A fast 64-bit hash for pre-grouping (collisions are resolved by the caller on the real value). -#}
{% macro segfit_hash64(expression) -%}
    {{ return(adapter.dispatch('segfit_hash64', 'segfit')(expression)) }}
{%- endmacro %}
{% macro default__segfit_hash64(expression) -%}
    {{ dbt.hash(expression) }}
{%- endmacro %}
{% macro duckdb__segfit_hash64(expression) -%}
    hash({{ expression }})
{%- endmacro %}

{#- The values of `expression` over the rows of `relation` (a CTE or relation name) where `condition` holds
    that occur more than once, each exactly once, as column `alias`. The default groups by the
    value. DuckDB sorts instead and keeps the second of each run of equal neighbours: at 1M/20M, sorting
    20M 64-bit hashes costs about half of grouping them, and a nearly sorted value (a row number) sorts
    almost for free. (On Spark a window without a partition would move every row to one task: it groups.) -#}
{% macro segfit_repeated_values(relation, expression, alias, condition) -%}
    {{ return(adapter.dispatch('segfit_repeated_values', 'segfit')(relation, expression, alias, condition)) }}
{%- endmacro %}
{% macro default__segfit_repeated_values(relation, expression, alias, condition) -%}
    select {{ expression }} as {{ alias }}
    from {{ relation }}
    where {{ condition }}
    group by {{ expression }}
    having count(*) > 1
{%- endmacro %}
{% macro duckdb__segfit_repeated_values(relation, expression, alias, condition) -%}
    select sorted_values.repeated as {{ alias }}
    from (
        select
            values_to_sort.sort_value as repeated,
            lag(values_to_sort.sort_value) over (order by values_to_sort.sort_value) as previous_value,
            lag(values_to_sort.sort_value, 2) over (order by values_to_sort.sort_value) as second_previous_value
        from (select {{ expression }} as sort_value from {{ relation }} where {{ condition }}) as values_to_sort
    ) as sorted_values
    where
        sorted_values.repeated = sorted_values.previous_value
        and sorted_values.repeated is distinct from sorted_values.second_previous_value
{%- endmacro %}

{#- A number from text, or null. DuckDB would also read `1_000` as 1000; segfit's contract has no digit
    separators, so a text with `_` is not a number. -#}
{% macro segfit_safe_cast_number_text(expression, type) -%}
    {{ return(adapter.dispatch('segfit_safe_cast_number_text', 'segfit')(expression, type)) }}
{%- endmacro %}
{% macro default__segfit_safe_cast_number_text(expression, type) -%}
    {{ segfit_safe_cast(expression, type) }}
{%- endmacro %}
{% macro duckdb__segfit_safe_cast_number_text(expression, type) -%}
    case when not contains({{ expression }}, '_') then try_cast({{ expression }} as {{ type }}) end
{%- endmacro %}

{#- A timestamp from text, or null, in UTC: a text with a UTC offset or zone (`2024-04-01 07:30+09`) is
    converted to UTC; a plain `YYYY-MM-DD[ HH:MM:SS]` (19 characters at most) is taken as written and
    takes the fast path. DuckDB's plain cast would drop the offset. -#}
{% macro segfit_safe_cast_timestamp_text(expression) -%}
    {{ return(adapter.dispatch('segfit_safe_cast_timestamp_text', 'segfit')(expression)) }}
{%- endmacro %}
{% macro default__segfit_safe_cast_timestamp_text(expression) -%}
    {{ segfit_safe_cast(expression, dbt.type_timestamp()) }}
{%- endmacro %}
{% macro duckdb__segfit_safe_cast_timestamp_text(expression) -%}
    case
        when length({{ expression }}) > 19
            then try_cast(try_cast({{ expression }} as timestamptz) as timestamp)
        else try_cast({{ expression }} as timestamp)
    end
{%- endmacro %}

{#- numerator / denominator as a double, null when the denominator is 0 or null. Written out because
    engines differ: `x * 1.0 / y` is a double on DuckDB but a DECIMAL rounded to 6 places on Spark (1.0 is
    a decimal literal there), so every ratio in the models goes through this macro. -#}
{% macro segfit_ratio(numerator, denominator) -%}
    {{ return(adapter.dispatch('segfit_ratio', 'segfit')(numerator, denominator)) }}
{%- endmacro %}
{% macro default__segfit_ratio(numerator, denominator) -%}
    cast({{ numerator }} as {{ segfit_double() }}) / nullif(cast({{ denominator }} as {{ segfit_double() }}), 0)
{%- endmacro %}

{#- A parsed timestamp as text, as DuckDB writes it (`2024-06-30 12:00:00`, `infinity`). -#}
{% macro segfit_timestamp_text(expression) -%}
    {{ return(adapter.dispatch('segfit_timestamp_text', 'segfit')(expression)) }}
{%- endmacro %}
{% macro default__segfit_timestamp_text(expression) -%}
    cast({{ expression }} as {{ segfit_text() }})
{%- endmacro %}

{#- A parsed number as text the way it was most likely written: the shortest text that reads back as the
    same value, without a trailing `.0` (a retention given as `45` shows as 45, not 45.0). -#}
{% macro segfit_number_text(expression) -%}
    {{ return(adapter.dispatch('segfit_number_text', 'segfit')(expression)) }}
{%- endmacro %}

{% macro default__segfit_number_text(expression) -%}
    regexp_replace(cast({{ expression }} as {{ segfit_text() }}), '\.0$', '')
{%- endmacro %}

{#- Distinct-month counting with a bit mask (int_customer_transactions_aggregated): a month index
    (segfit_month_index) sets bit (month mod 126) of a 126-bit mask kept in two signed 64-bit integers
    (bits 0..62 each; no unsigned type needed). `word` 0 holds positions 0..62, word 1 positions 63..125.
    The bit count is the number of distinct months when the months span fewer than 126. -#}
{% macro segfit_month_mask_width() -%}
    {{ return(126) }}
{%- endmacro %}

{% macro segfit_month_bits(month, word) -%}
    {{ return(adapter.dispatch('segfit_month_bits', 'segfit')(month, word)) }}
{%- endmacro %}
{% macro default__segfit_month_bits(month, word) -%}
    {%- set position = '(' ~ month ~ ' % ' ~ segfit_month_mask_width() ~ ')' -%}
    bit_or(
        case
            when {{ position }} {{ '<' if word == 0 else '>=' }} 63
                then cast(1 as {{ dbt.type_bigint() }}) << ({{ position }}{{ '' if word == 0 else ' - 63' }})
        end
    )
{%- endmacro %}

{#- DuckDB: the whole 126-bit mask in one HUGEINT (bits 0..125; bit 127 is the sign and is never set), so
    the 20M-row group-by keeps one bit_or instead of two with a `case` each; word 1 is then a constant 0
    (its bit count adds nothing). Same set bits, same count as the two-word default. -#}
{% macro duckdb__segfit_month_bits(month, word) -%}
    {%- if word == 0 -%}
        bit_or(cast(1 as hugeint) << ({{ month }} % {{ segfit_month_mask_width() }}))
    {%- else -%}
        cast(0 as hugeint)
    {%- endif -%}
{%- endmacro %}

{% macro segfit_bit_count(expression) -%}
    {{ return(adapter.dispatch('segfit_bit_count', 'segfit')(expression)) }}
{%- endmacro %}
{% macro default__segfit_bit_count(expression) -%}
    coalesce(bit_count({{ expression }}), 0)
{%- endmacro %}

{#- One narrow row per non-null value of each column in `features` of `relation`: the feature's number (its
    place in the list, from 1), the anomaly flag and the value as a double. A model that needs these rows
    more than once calls this once per reader: a CTE read twice is materialized. -#}
{% macro segfit_feature_values(relation, features) -%}
    {%- for feature in features %}
    select
        {{ loop.index }} as feature_order,
        is_classification_anomaly as is_anomaly,
        cast({{ feature }} as {{ segfit_double() }}) as feature_value
    from {{ relation }}
    where {{ feature }} is not null
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{%- endmacro %}
