{#-
    Spark implementations of segfit's dispatched macros (dbt-spark, session or Thrift/HTTP; tables as
    Parquet). Each one reproduces what the DuckDB version does, so the same input gives the same marts:
    the same rows kept, the same rows rejected for the same reasons (tests/spark/test_identity.py).
    Spark SQL specifics that matter here:
    - string literals take backslash escapes, and two adjacent literals concatenate ('a''b' is "ab"), so a
      quote is escaped with a backslash, never doubled;
    - identifiers are quoted with backticks (a double-quoted name is a string literal);
    - file paths are Hadoop glob patterns: \ [ ] { } * ? are escaped with a backslash to be read literally;
    - a permanent view may not read a temporary view, so a Parquet input is read in place with
      parquet.`path` and a CSV input through a session-scoped temporary view that only the staging table
      (a CTAS) reads.
-#}

{% macro spark__segfit_sql_string(text) -%}
    {{- return("'" ~ (((text | string) | replace('\\', '\\\\')) | replace("'", "\\'")) ~ "'") -}}
{%- endmacro %}

{% macro spark__segfit_quote_identifier(name) -%}
    {{- return('`' ~ ((name | string) | replace('`', '``')) ~ '`') -}}
{%- endmacro %}

{#- Hadoop glob characters, each escaped with a backslash (the backslash itself first). -#}
{% macro spark__segfit_literal_file_pattern(path) -%}
    {%- set escaped = path | replace('\\', '\\\\') -%}
    {%- for character in ['[', ']', '{', '}', '*', '?'] -%}
        {%- set escaped = escaped | replace(character, '\\' ~ character) -%}
    {%- endfor -%}
    {{- return(escaped) -}}
{%- endmacro %}

{#- The reader. Parquet: read in place (a view may use it), with the file's own row index. CSV/TSV: the same
    RFC 4180 settings as DuckDB's read_csv (delimiter, quote and escape ", header on line 1, no comment
    lines, a quoted field may span lines), every column as text, through a temporary view named after
    the path's hash; the Python pre-check has already refused ragged rows, bad encodings and
    unterminated quotes, so FAILFAST never fires on a file the CLI passed. -#}
{% macro spark__segfit_file_reader(path, row_numbers=true) -%}
    {%- set pattern = segfit_literal_file_pattern(path) -%}
    {%- if (path | lower).endswith(('.parquet', '.pq')) -%}
        {%- set relation = 'parquet.' ~ segfit_quote_identifier(pattern) -%}
        {%- if row_numbers -%}
            (select *, _metadata.row_index as file_row_number from {{ relation }}) as segfit_parquet_input
        {%- else -%}
            {{ relation }}
        {%- endif -%}
    {%- else -%}
        {%- set view = 'segfit_csv_' ~ local_md5(path) -%}
        {%- if execute -%}
            {%- do run_query(
                "create or replace temporary view " ~ view ~ " using csv options ("
                ~ "path " ~ segfit_sql_string(pattern)
                ~ ", header 'true', inferSchema 'false', multiLine 'true', mode 'FAILFAST', encoding 'UTF-8'"
                ~ ", sep " ~ ("'\\t'" if (path | lower).endswith('.tsv') else "','")
                ~ ", quote '\"', escape '\"', comment '\\u0000', ignoreLeadingWhiteSpace 'false'"
                ~ ", ignoreTrailingWhiteSpace 'false')") -%}
        {%- endif -%}
        {{ view }}
    {%- endif -%}
{%- endmacro %}

{#- Row numbers in file order: Parquet's own row index; for CSV the scan order of the single-file read
    (monotonically_increasing_id grows in file order); for the demo seeds, the seed's own `_segfit_seed_row`
    is not available, so the seeds are read from their CSV files on Spark (spark__segfit_seed_relation). -#}
{% macro spark__segfit_row_number_sql(path) -%}
    {%- if (path | lower).endswith(('.parquet', '.pq')) -%}
        {{ return('file_row_number + 1') }}
    {%- else -%}
        {{ return('row_number() over (order by monotonically_increasing_id())') }}
    {%- endif -%}
{%- endmacro %}

{% macro spark__segfit_hash64(expression) -%}
    xxhash64({{ expression }})
{%- endmacro %}

{% macro spark__segfit_quarter(expression) -%}
    quarter({{ expression }})
{%- endmacro %}

{% macro spark__segfit_median(expression) -%}
    percentile_cont(0.5) within group (order by {{ expression }})
{%- endmacro %}

{#- Numbers in text, as DuckDB reads them: optional blanks, an optional sign, decimal or exponent notation,
    or nan / inf / infinity (any case). Spark's cast alone would also take Java's forms (`1d`, `2.5f`,
    hexadecimal `0x1p3`), which DuckDB does not. -#}
{% macro spark__segfit_safe_cast_number_text(expression, type) -%}
    case
        when {{ expression }} rlike '^\\s*[-+]?(([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?|(?i:nan|inf|infinity))\\s*$'
            then coalesce(
                try_cast({{ expression }} as {{ type }}),
                case when lower({{ expression }}) rlike '^\\s*[-+]?nan\\s*$' then cast('NaN' as {{ type }}) end
            )
    end
{%- endmacro %}

{#- Timestamps in text, as segfit's DuckDB macro reads them (duckdb__segfit_safe_cast_timestamp_text):
    `Y-M-D` (also `/` or one blank as separator, 1+ digit year, 1-2 digit month and day), optionally
    `T` or blanks and `H:M[:S[.fraction]]` (24:00:00 is the next midnight, fractions cut to microseconds),
    optionally `Z`, ` UTC` or a UTC offset (+HH, +HHMM, +HH:MM), which is applied to texts longer than 19
    characters as in the DuckDB macro. Spark's cast alone would also take `2024`, `2024-06`, `now` or
    `today`, and would refuse a 1-3 digit year. Years beyond 9999 and named zones other than UTC cannot be
    represented or are not read: such a text is "not a valid date" here (DuckDB would call year 12345 "in
    the future"). `infinity` / `-infinity` map to the ends of Spark's range (see segfit_infinite_timestamp). -#}
{% macro spark__segfit_safe_cast_timestamp_text(expression) -%}
    {#- groups: 1 year, 3 month, 4 day, 5-8 hour, minute, second, fraction, 10-12 offset sign, hours, minutes -#}
    {%- set pattern = "'^\\\\s*([0-9]+)([-/ ])([0-9]{1,2})\\\\2([0-9]{1,2})"
        ~ "(?:(?:T| +)([0-9]{1,2}):([0-9]{1,2})(?::([0-9]{1,2})(?:[.]([0-9]*))?)?)?"
        ~ "\\\\s*(Z|UTC|([-+])([0-9]{2}):?([0-9]{2})?)?\\\\s*$'" -%}
    {%- set part = [] -%}
    {%- for index in range(13) -%}
        {%- do part.append("regexp_extract(" ~ expression ~ ", " ~ pattern ~ ", " ~ index ~ ")") -%}
    {%- endfor -%}
    {%- set year = "cast(" ~ part[1] ~ " as int)" -%}
    {%- set month = "cast(" ~ part[3] ~ " as int)" -%}
    {%- set day = "cast(" ~ part[4] ~ " as int)" -%}
    {%- set hour = "coalesce(cast(nullif(" ~ part[5] ~ ", '') as int), 0)" -%}
    {%- set minute = "coalesce(cast(nullif(" ~ part[6] ~ ", '') as int), 0)" -%}
    {%- set second = "coalesce(cast(nullif(" ~ part[7] ~ ", '') as int), 0)" -%}
    {%- set micros = "cast(rpad(substr(" ~ part[8] ~ ", 1, 6), 6, '0') as int)" -%}
    {%- set offset_minutes -%}
        case
            when length({{ expression }}) > 19 and {{ part[10] }} <> ''
                then (case when {{ part[10] }} = '-' then -1 else 1 end)
                    * (cast({{ part[11] }} as int) * 60 + coalesce(cast(nullif({{ part[12] }}, '') as int), 0))
            else 0
        end
    {%- endset -%}
    case
        when lower(trim({{ expression }})) = 'infinity' then {{ segfit_infinite_timestamp_values()[0] }}
        when lower(trim({{ expression }})) = '-infinity' then {{ segfit_infinite_timestamp_values()[1] }}
        when {{ expression }} rlike {{ pattern }}
            and {{ year }} between 1 and 9999
            and {{ month }} between 1 and 12
            and {{ day }} between 1 and day(last_day(make_date({{ year }}, {{ month }}, 1)))
            and ({{ hour }} < 24 or ({{ hour }} = 24 and {{ minute }} = 0 and {{ second }} = 0 and {{ micros }} = 0))
            and {{ minute }} < 60
            and {{ second }} < 60
            then timestampadd(
                MICROSECOND,
                {{ micros }},
                timestampadd(
                    SECOND,
                    {{ hour }} * 3600 + {{ minute }} * 60 + {{ second }} - ({{ offset_minutes }}) * 60,
                    cast(make_date({{ year }}, {{ month }}, {{ day }}) as timestamp)
                )
            )
    end
{%- endmacro %}

{#- Spark timestamps have no infinity: the text `infinity` / `-infinity` becomes the last / first
    microsecond of Spark's range, and the plausibility check calls exactly those "not a finite date".
    On DuckDB they are the real infinities. -#}
{% macro segfit_infinite_timestamp_values() -%}
    {{ return(adapter.dispatch('segfit_infinite_timestamp_values', 'segfit')()) }}
{%- endmacro %}
{% macro default__segfit_infinite_timestamp_values() -%}
    {%- set timestamp = dbt.type_timestamp() -%}
    {{ return(["cast('infinity' as " ~ timestamp ~ ")", "cast('-infinity' as " ~ timestamp ~ ")"]) }}
{%- endmacro %}
{% macro spark__segfit_infinite_timestamp_values() -%}
    {{ return(["timestamp'9999-12-31 23:59:59.999999'", "timestamp'0001-01-01 00:00:00'"]) }}
{%- endmacro %}

{#- A timestamp as text: the ends of Spark's range stand for `infinity` / `-infinity` (above), so they are
    written as DuckDB writes the infinities. -#}
{% macro spark__segfit_timestamp_text(expression) -%}
    {%- set ends = segfit_infinite_timestamp_values() -%}
    case
        when {{ expression }} = {{ ends[0] }} then 'infinity'
        when {{ expression }} = {{ ends[1] }} then '-infinity'
        else cast({{ expression }} as {{ segfit_text() }})
    end
{%- endmacro %}

{#- History across builds on Spark. Every segfit build is a new warehouse directory; the CLI names the
    published one in SEGFIT_PREVIOUS_BUILD, and this hook copies its snapshot table (Parquet files at
    <previous>/snapshots.db/customer_segment_fit_history/) into the new warehouse before the snapshot
    runs. The CLI sets the variable only when that folder exists. -#}
{% macro spark__segfit_carry_forward_history() -%}
    {%- set previous = env_var('SEGFIT_PREVIOUS_BUILD', '') -%}
    {%- if not execute or previous == '' or flags.WHICH not in ('build', 'snapshot', 'run') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set history = 'customer_segment_fit_history' -%}
    {%- if adapter.get_relation(database=none, schema='snapshots', identifier=history) is not none -%}
        {{ return('') }}
    {%- endif -%}
    {%- set location = previous ~ '/snapshots.db/' ~ history -%}
    {%- do run_query("create schema if not exists snapshots") -%}
    {%- do run_query("create table snapshots." ~ history ~ " using parquet as select * from parquet."
                     ~ segfit_quote_identifier(segfit_literal_file_pattern(location))) -%}
    {%- do adapter.cache_added(api.Relation.create(database=none, schema='snapshots', identifier=history,
                                                    type='table')) -%}
    {{ log("segfit: carried the segment-fit history over from the previous build", info=true) }}
    {{ return('') }}
{%- endmacro %}

{% macro spark__segfit_source_relation(kind, path) -%}
    {%- set lineage = source('segfit_inputs', kind) -%}
    {{ return(segfit_file_reader(path)) }}
{%- endmacro %}

{#- Spark SQL cannot list files; the segfit CLI's pre-check has already opened the input, and plain dbt
    stops with Spark's own "path does not exist" when it is missing. -#}
{% macro spark__segfit_input_exists(path, relation) -%}
    {{ return(true) }}
{%- endmacro %}

{#- Distinct-month bit mask: Spark's shiftleft for DuckDB's `<<` (same bits, same bit_or, same bit_count). -#}
{% macro spark__segfit_month_bits(month, word) -%}
    {%- set position = '(' ~ month ~ ' % ' ~ segfit_month_mask_width() ~ ')' -%}
    bit_or(
        case
            when {{ position }} {{ '<' if word == 0 else '>=' }} 63
                then shiftleft(cast(1 as {{ dbt.type_bigint() }}), {{ position }}{{ '' if word == 0 else ' - 63' }})
        end
    )
{%- endmacro %}

{#- A number as DuckDB writes it (the shortest text that reads back, `.0` dropped): Java's Double.toString
    switches to `1.0E7` notation outside [1e-3, 1e7) where DuckDB writes plain digits up to 1e16 and
    `1e+16` / `1e-05` beyond, and writes `Infinity` / `NaN` where DuckDB writes `inf` / `nan`; the two
    infinite timestamps are written `infinity` / `-infinity`, as DuckDB writes its own. Plain range:
    through a decimal (Spark turns a double into a decimal through its shortest text); exponent range: the
    Java text rewritten. Timestamps and integers pass through their text unchanged, as on DuckDB. -#}
{% macro spark__segfit_number_text(expression) -%}
    {%- set text = 'cast(' ~ expression ~ ' as string)' -%}
    {#- the infinite timestamps (segfit_infinite_timestamp_values) as DuckDB writes its real ones #}
    case
        when {{ text }} = '9999-12-31 23:59:59.999999' then 'infinity'
        when {{ text }} = '0001-01-01 00:00:00' then '-infinity'
        when not ({{ text }} rlike '^-?[0-9.]+E-?[0-9]+$' or {{ text }} in ('Infinity', '-Infinity', 'NaN'))
            then regexp_replace({{ text }}, '[.]0$', '')
        when {{ text }} = 'Infinity' then 'inf'
        when {{ text }} = '-Infinity' then '-inf'
        when {{ text }} = 'NaN' then 'nan'
        when abs(try_cast({{ text }} as double)) >= 1e16 or abs(try_cast({{ text }} as double)) < 1e-4
            then concat(
                regexp_replace(regexp_extract({{ text }}, '^(-?[0-9.]+)E', 1), '[.]0$', ''),
                'e',
                case when regexp_extract({{ text }}, 'E(-?)', 1) = '-' then '-' else '+' end,
                case
                    when length(regexp_extract({{ text }}, 'E-?([0-9]+)$', 1)) < 2
                        then concat('0', regexp_extract({{ text }}, 'E-?([0-9]+)$', 1))
                    else regexp_extract({{ text }}, 'E-?([0-9]+)$', 1)
                end
            )
        else regexp_replace(
            regexp_replace(cast(try_cast(try_cast({{ text }} as double) as decimal(38, 18)) as string), '0+$', ''),
            '[.]$', ''
        )
    end
{%- endmacro %}
