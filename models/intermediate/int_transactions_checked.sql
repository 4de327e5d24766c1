{#- One row per input transaction (key source_row_number): every staged transaction with one check_<column>
    per rule (null = passed) and is_rejected. int_transactions_rejected (the quarantine) and
    int_transactions_validated (the clean rows) are its two halves. Refunds (negative amounts) are valid
    transactions: they count, and they net off revenue.
    Full load (var transactions_load = full, the default): a view. The checks run once, when
    int_transactions_rejected stores the rejected rows; the clean rows are read from the input
    (int_transactions_validated), so a full build never writes the whole input.
    Stored (transactions_load = store): a table of every checked row, rebuilt from the file, so that later
    runs can append to it. Appending (transactions_load = append): a run adds only the new file's rows.
    Their row numbers continue after the stored ones, so N daily files give the source_row_numbers of one
    concatenated file; a duplicate transaction_id is found against every stored id as well as the new
    file's (the first occurrence, the lowest row number, is kept), and the orphan check uses the customers
    as of this run. Stored rows are never re-checked, so anything that would change their checks (the
    customers, the plausibility vars) needs a full build: segfit_append_guard() stops the run, from the
    warehouse's data, when it changed; and an append onto a warehouse that did not store its transactions
    (a full load) stops too. -#}
-- depends_on: {{ ref('int_customer_records_deduplicated') }}
{%- set append = segfit_transactions_append() -%}
{{ config(
    materialized=segfit_checked_materialization(),
    incremental_strategy='append',
    full_refresh=(none if append else true),
    on_schema_change='fail',
) }}
{%- set cfg = segfit_config() -%}
{%- set bounds = segfit_plausible_bounds() -%}

{%- set incremental = is_incremental() -%}
{%- if append and not incremental and execute and not flags.FULL_REFRESH and flags.WHICH in ('build', 'run') -%}
    {#- appending to nothing would silently start over from this one file (a warehouse built with a full
        load, which does not store its transactions, or by an older segfit) -#}
    {{ segfit_fail("transactions_load is append, but the warehouse has no stored transactions to append to"
                   ~ " (" ~ this ~ " is not a stored table: a full load does not store them); build once with"
                   ~ " transactions_load store (segfit build --store-transactions) on all the transactions") }}
{%- endif -%}
{%- if incremental and execute -%}
    {%- do segfit_append_guard(this, ref('stg_transactions'), ref('int_customer_records_deduplicated')) -%}
{%- endif -%}
{#- this file's rows are numbered after the stored ones (an uncorrelated scalar: computed once) -#}
{%- set row_offset = (' + (select coalesce(max(source_row_number), 0) from ' ~ this ~ ')') if incremental else '' -%}
{%- set row_number_column = ('source_row_number' ~ row_offset ~ ' as source_row_number') if incremental
                            else 'source_row_number' %}

with

transactions as (

    select
        {{ row_number_column }},
        transaction_id,
        customer_id,
        transaction_date,
        amount,
        profit,
        transaction_date_raw,
        amount_raw,
        profit_raw,
        input_label
    from {{ ref('stg_transactions') }}

),

{#- The duplicate check reads the ids through import CTEs of its own: with each CTE used once, the
    engine streams the input instead of materializing all of it for three readers. #}

new_ids as (

    select transaction_id from {{ ref('stg_transactions') }}

),

new_ids_with_rows as (

    select
        transaction_id,
        {{ row_number_column }}
    from {{ ref('stg_transactions') }}

),
{%- if incremental %}

    {#- the stored rows that share an id with the new file (a semi-join on the new file's ids: the stored
        ids are scanned once, and only the matches are kept) #}
    stored_ids_with_rows as (

        select
            transaction_id,
            source_row_number
        from {{ this }}
        where transaction_id in (
            select staged.transaction_id from {{ ref('stg_transactions') }} as staged
            where staged.transaction_id is not null
        )

    ),

    ids_for_hashing as (

        select transaction_id from new_ids
        union all
        select transaction_id from stored_ids_with_rows

    ),

    ids_with_rows as (

        select
            transaction_id,
            source_row_number
        from new_ids_with_rows
        union all
        select
            transaction_id,
            source_row_number
        from stored_ids_with_rows

    ),
{%- else %}

    ids_for_hashing as (

        select transaction_id from new_ids

    ),

    ids_with_rows as (

        select
            transaction_id,
            source_row_number
        from new_ids_with_rows

    ),
{%- endif %}

valid_customers as (

    select distinct customer_id
    from {{ ref('int_customers_validated') }}

),

candidate_hashes as (

    {#- finding repeated 64-bit hashes is far cheaper than grouping millions of distinct strings -#}
    {{ segfit_repeated_values('ids_for_hashing', segfit_hash64('transaction_id'), 'id_hash',
                              'transaction_id is not null') }}

),

repeated_ids as (

    select
        ids_with_rows.transaction_id,
        min(ids_with_rows.source_row_number) as first_row_with_id
    from ids_with_rows
    inner join candidate_hashes
        on {{ segfit_hash64('ids_with_rows.transaction_id') }} = candidate_hashes.id_hash
    group by ids_with_rows.transaction_id
    having count(*) > 1

),

checked as (

    select
        transactions.source_row_number,
        transactions.transaction_id,
        transactions.customer_id,
        transactions.transaction_date,
        transactions.amount,
        transactions.profit,
        case
            when transactions.transaction_id is null then 'transaction_id is null or blank'
            when transactions.source_row_number > repeated_ids.first_row_with_id
                then {{ dbt.concat(["'duplicate transaction_id (first seen at data row '",
                                    "cast(repeated_ids.first_row_with_id as " ~ segfit_text() ~ ")", "')'"]) }}
        end as check_transaction_id,
        case
            when transactions.customer_id is null then 'customer_id is null or blank'
            when valid_customers.customer_id is null then 'customer_id has no valid customer record (orphan)'
        end as check_customer_id,
        case
            when transactions.transaction_date is not null
                then
                    case
                        {{ segfit_date_range_checks('transactions.transaction_date', bounds, 'transaction_date') }}
                    end
            when transactions.transaction_date_raw is null then 'transaction_date is null or blank'
            else 'transaction_date is not a valid date'
        end as check_transaction_date,
        case
            when transactions.amount is not null
                then
                    case
                        when abs(transactions.amount) > 1e300 then 'amount is not a finite number'
                        {{ segfit_value_bound_check('transactions.amount', bounds, 'amount') }}
                    end
            when transactions.amount_raw is null then 'amount is null or blank'
            else 'amount is not a number'
        end as check_amount,
        case
            when transactions.profit is not null
                then
                    case
                        when abs(transactions.profit) > 1e300 then 'profit is not a finite number'
                        {{ segfit_value_bound_check('transactions.profit', bounds, 'profit') }}
                    end
            when transactions.profit_raw is not null then 'profit is not a number'
        end as check_profit,
        transactions.transaction_date_raw,
        transactions.amount_raw,
        transactions.profit_raw,
        transactions.input_label
    from transactions
    left join repeated_ids
        on transactions.transaction_id = repeated_ids.transaction_id
    left join valid_customers
        on transactions.customer_id = valid_customers.customer_id

),

flagged as (

    select
        checked.*,
        (
            check_transaction_id is not null
            or check_customer_id is not null
            or check_transaction_date is not null
            or check_amount is not null
            or check_profit is not null
        ) as is_rejected
    from checked

),

final as (

    select * from flagged

)

select * from final
