{#- One row per REJECTED input transaction (key source_row_number): the quarantine, the rows of
    int_transactions_checked with a failed check, with the text as given (`<column>_raw`) where the typed
    value is null. -#}

with

checked as (

    select * from {{ ref('int_transactions_checked') }}

),

final as (

    select * from checked
    where is_rejected

)

select * from final
