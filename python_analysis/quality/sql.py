"""Row-level expectations evaluated in SQL over a whole table (one scan counts every expectation's unexpected rows)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .contract import BOOL, FLOAT, INT, KEYS, QUARTERS, TEXT, TIMESTAMP, TYPE_LISTS
from .derived import DERIVATIONS
from .offending import _target_columns, _text
from .results import CheckConfig, ChecksError
from .sources import RelationSource, Source, _quote
from .table_level import TABLE_LEVEL, _Finding, _resolved, _Totals

# row-level expectations segfit can evaluate in SQL over a whole table (see _sql_row_level)
SQL_ROW_LEVEL = frozenset({
    "expect_table_columns_to_match_set",
    "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_pair_values_to_be_equal",
    "expect_column_pair_values_a_to_be_greater_than_b",
})

# DuckDB column types -> the column kinds of TYPE_LISTS (what the pandas frame of such a column holds)
_DUCKDB_KINDS: dict[str, str] = {
    "VARCHAR": TEXT,
    "BIGINT": INT, "INTEGER": INT, "SMALLINT": INT, "TINYINT": INT, "HUGEINT": INT, "UBIGINT": INT,
    "UINTEGER": INT, "USMALLINT": INT, "UTINYINT": INT,
    "DOUBLE": FLOAT, "FLOAT": FLOAT,
    "BOOLEAN": BOOL,
    "TIMESTAMP": TIMESTAMP, "TIMESTAMP_NS": TIMESTAMP, "TIMESTAMP_MS": TIMESTAMP, "TIMESTAMP_S": TIMESTAMP,
}


def _number(column: str) -> str:
    """SQL: a column as a double, NaN as null (pandas' to_numeric(...).isna() view of it)."""
    value = f"try_cast({_quote(column)} as double)"
    return f"(case when isnan({value}) then null else {value} end)"


# the flag's rule per threshold mode, as in expected_anomaly_flag: |deviation| divided by this column (None:
# not divided). A mode missing here keeps the fit tables on the GX path.
SQL_FLAG_DIVISORS: dict[str, str | None] = {
    "absolute": None, "relative": "segment_avg_retention", "zscore": "segment_sd_retention",
}


def fit_check_columns(config: CheckConfig, number: Callable[[str], str], quote: Callable[[str], str],
                      round_even: str) -> list[tuple[str, str]]:
    """The derived check columns of _derive_fit as (name, SQL expression) pairs, for any engine: ``number``
    reads a column as a double with NaN as null, ``quote`` quotes an identifier, ``round_even`` names the
    engine's round-half-to-even function (numpy's rounding at 10 decimals). Same definitions as pandas'."""
    shares = [number(f"{q}_share") for q in QUARTERS]
    deviation = number("retention_deviation")
    magnitude = f"abs({deviation})"
    divisor_column = SQL_FLAG_DIVISORS[config.anomaly_threshold_mode]
    if divisor_column is not None:
        divisor = number(divisor_column)
        magnitude = f"({magnitude} / (case when {divisor} <> 0 then {divisor} end))"
    threshold = repr(float(config.anomaly_threshold))  # a validated float, not text from the data
    return [
        ("q_share_nulls", "(" + " + ".join(f"(case when {v} is null then 1 else 0 end)" for v in shares) + ")"),
        ("q_share_sum", "(" + " + ".join(shares) + ")"),
        ("expected_direction", f"(case when {deviation} is null then null when {round_even}({deviation}, 10) < 0 "
                               f"then 'below' else 'above' end)"),
        ("expected_flag", f"coalesce({round_even}({magnitude}, 10) > {threshold}, false)"),
        ("anomaly_flag_numeric", f"cast(try_cast({quote('is_classification_anomaly')} as boolean) as double)"),
    ]


def _sql_derived_fit(config: CheckConfig) -> str:
    """The derived check columns of _derive_fit as a DuckDB select list."""
    return ", ".join(f"{expression} as {name}"
                     for name, expression in fit_check_columns(config, _number, _quote, "round_even"))


# derived check columns with a SQL form (the other DERIVATIONS are on small summary tables)
SQL_DERIVATIONS: dict[str, Callable[[CheckConfig], str]] = {
    "customer_segment_fit": _sql_derived_fit,
    "classification_anomalies": _sql_derived_fit,
}


def _sql_checkable(table: str, expectations: list[Any], config: CheckConfig) -> bool:
    """A table can be validated in SQL (instead of GX batches of chunks) when its derived check columns,
    if any, have a SQL form and every expectation of its suite has a SQL form here."""
    if table in SQL_DERIVATIONS and config.anomaly_threshold_mode not in SQL_FLAG_DIVISORS:
        return False
    return ((table not in DERIVATIONS or table in SQL_DERIVATIONS)
            and all(e.expectation_type in SQL_ROW_LEVEL | TABLE_LEVEL for e in expectations))


def _with_derived(source: RelationSource, table: str, config: CheckConfig) -> RelationSource:
    derive = SQL_DERIVATIONS.get(table)
    if derive is None:
        return source
    return RelationSource(source.con, f"(select *, {derive(config)} from {source.relation})")  # noqa: S608


def _missing(column: str, kinds: Mapping[str, str]) -> str:
    """SQL: the value is missing as pandas/GX sees it (null, or NaN in a float column)."""
    quoted = _quote(column)
    if kinds.get(column) == FLOAT:
        return f"({quoted} is null or isnan({quoted}))"
    return f"({quoted} is null)"


def _violation(expectation: Any, kwargs: Mapping[str, Any], kinds: Mapping[str, str],
               params: list[Any]) -> str | None:
    """SQL condition true for a row GX would count as unexpected; ``None`` for a column-level expectation.
    Literal values are appended to ``params`` (never pasted into the SQL)."""
    kind = expectation.expectation_type
    if kind == "expect_column_values_to_not_be_null":
        return _missing(kwargs["column"], kinds)
    if kind == "expect_column_values_to_be_between":
        column = _quote(kwargs["column"])
        outside = []
        for bound, operator in (("min_value", "<"), ("max_value", ">")):
            if kwargs.get(bound) is not None:
                if kwargs.get("strict_min" if bound == "min_value" else "strict_max"):
                    operator += "="
                outside.append(f"{column} {operator} ?")
                params.append(kwargs[bound])
        if not outside:
            return "false"
        return f"(not {_missing(kwargs['column'], kinds)} and ({' or '.join(outside)}))"
    if kind == "expect_column_values_to_be_in_set":
        params.append(list(kwargs["value_set"]))
        return f"(not {_missing(kwargs['column'], kinds)} and not list_contains(?, {_quote(kwargs['column'])}))"
    if kind in ("expect_column_pair_values_to_be_equal", "expect_column_pair_values_a_to_be_greater_than_b"):
        a, b = kwargs["column_A"], kwargs["column_B"]
        both_missing = f"({_missing(a, kinds)} and {_missing(b, kinds)})"
        if kind == "expect_column_pair_values_to_be_equal":
            differs = f"({_missing(a, kinds)} or {_missing(b, kinds)} or {_quote(a)} <> {_quote(b)})"
        else:
            operator = ">=" if kwargs.get("or_equal") else ">"
            differs = f"not coalesce({_quote(a)} {operator} {_quote(b)}, false)"
        return f"(not {both_missing} and {differs})"
    return None


def _label(values: Mapping[str, Any], keys: list[str], columns: list[str]) -> str:
    """An offending row as GX results are shown (see _offending): key=value, then the checked values."""
    label = "/".join(f"{k}={_text(values[k])}" for k in keys) or "row"
    extra = [f"{c}={_text(values[c])}" for c in columns if c not in keys]
    if extra:
        label += ": " + ", ".join(extra)
    return label


def _sql_row_level(expectations: list[tuple[int, Any]], source: Source, table: str,  # noqa: C901 - one SQL translation per GX expectation type, side by side (owned by #11)
                   parameters: Mapping[str, float], config: CheckConfig,
                   column_types: Mapping[str, str]) -> tuple[dict[int, _Finding], _Totals]:
    """Evaluate row-level expectations over every row of the table in SQL: one scan counts the unexpected
    rows of all of them; a failing one is then queried for its first offending rows in key order. Same
    semantics as GX on a pandas frame: missing = null or NaN; between/in-set ignore missing values; pair
    checks ignore rows where both values are missing."""
    kinds = {name: _DUCKDB_KINDS.get(kind.upper().split("(")[0], kind) for name, kind in column_types.items()}
    findings: dict[int, _Finding] = {}
    conditions: list[tuple[int, Any, dict[str, Any], str, list[Any]]] = []
    for position, expectation in expectations:
        kwargs = _resolved(expectation.configuration.kwargs, parameters)
        kind = expectation.expectation_type
        if kind == "expect_table_columns_to_match_set":
            missing = [c for c in kwargs["column_set"] if c not in column_types]
            if missing:
                findings[position] = _Finding([f"missing column {c}" for c in missing][:config.max_offending_keys],
                                              len(missing))
            continue
        targets = _target_columns(kwargs)
        absent = [c for c in targets if c not in column_types]
        if absent:
            raise ChecksError(f"{table}: {kind}({', '.join(targets)}) raised: column {absent[0]} is missing")
        if kind == "expect_column_values_to_be_in_type_list":
            wanted = {k for k, names in TYPE_LISTS.items() if set(names) & set(kwargs["type_list"])}
            if kinds[kwargs["column"]] not in wanted:
                findings[position] = _Finding([f"observed={column_types[kwargs['column']]}"][:config.max_offending_keys],
                                              None)
            continue
        params: list[Any] = []
        condition = _violation(expectation, kwargs, kinds, params)
        if condition is None:
            raise ChecksError(f"{table}: {kind} has no SQL form")
        conditions.append((position, expectation, kwargs, condition, params))
    all_params = [p for *_, params in conditions for p in params]
    counted = ", ".join(f"count(*) filter (where {condition})" for *_, condition, _ in conditions)
    try:
        (row,) = source.query(f"select count(*){', ' + counted if counted else ''} from {{t}}",  # noqa: S608
                              list(column_types), all_params)
    except Exception as exc:  # noqa: BLE001 - a SQL error is a failure of the run
        raise ChecksError(f"{table}: the row-level checks could not be computed: {exc}") from exc
    totals = _Totals(rows=int(row[0]))
    keys = [c for c in KEYS[table] if c in column_types]
    for (position, _, kwargs, condition, params), count in zip(conditions, row[1:], strict=True):
        if not count:
            continue
        shown = list(dict.fromkeys(keys + _target_columns(kwargs)))
        order = ", ".join(_quote(k) for k in keys) or "1"
        rows = source.query(f"select {', '.join(_quote(c) for c in shown)} from {{t}} "  # noqa: S608
                            f"where {condition} order by {order} limit ?", list(column_types),
                            [*params, max(config.max_offending_keys, 1) * 4])
        labels: list[str] = []
        for values in rows:
            label = _label(dict(zip(shown, values, strict=True)), keys, _target_columns(kwargs))
            if label not in labels and len(labels) < config.max_offending_keys:
                labels.append(label)
        findings[position] = _Finding(labels, int(count))
    return findings, totals
