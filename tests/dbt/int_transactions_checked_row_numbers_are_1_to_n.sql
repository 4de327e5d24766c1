{#- The stored transactions' row numbers are exactly 1..n: files appended one after another continue the
    numbering (int_transactions_checked), so an overlap or a gap between two loads fails here. One scan
    of one integer column, where a unique test would group every row. Enabled when the transactions are
    stored (transactions_load store or append): with a full load the checked rows are a view whose row
    numbers are the reader's generated ones (file_row_number + 1, or row_number()), 1..n by construction,
    and scanning the view would run every check again (seconds at 20M rows) to test the reader. -#}
{{ config(enabled=segfit_transactions_stored()) }}

with

checked as (

    select source_row_number from {{ ref('int_transactions_checked') }}

),

summary as (

    select
        count(*) as stored_rows,
        min(source_row_number) as first_row,
        max(source_row_number) as last_row
    from checked

),

final as (

    select * from summary
    where stored_rows > 0 and (first_row <> 1 or last_row <> stored_rows)

)

select * from final
