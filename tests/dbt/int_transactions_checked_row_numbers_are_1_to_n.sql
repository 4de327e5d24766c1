{#- The stored transactions' row numbers are exactly 1..n: files appended one after another continue the
    numbering (int_transactions_checked), so an overlap or a gap between two loads fails here. One scan
    of one integer column, where a unique test would group every row. -#}

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
