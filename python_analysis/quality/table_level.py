"""Expectations that need the whole table (uniqueness, row count, mean, sum), computed by segfit over every row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .contract import KEYS
from .derived import _numeric
from .offending import _offending, _target_columns, _text
from .results import CheckConfig, ChecksError
from .sources import Source, _quote

# expectations that need the whole table; in chunked mode segfit computes them itself (see _table_level)
TABLE_LEVEL = frozenset({
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
    "expect_table_row_count_to_equal",
    "expect_column_mean_to_be_between",
    "expect_column_sum_to_be_between",
})


@dataclass
class _Finding:
    """One failed expectation, merged over the chunks of a table."""

    offending: list[str] = field(default_factory=list)
    count: int | None = None


def _resolved(kwargs: Mapping[str, Any], parameters: Mapping[str, float]) -> dict[str, Any]:
    return {k: parameters[v["$PARAMETER"]] if isinstance(v, dict) and "$PARAMETER" in v else v
            for k, v in kwargs.items()}



_INTEGER_TYPES = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                            "UINTEGER", "UBIGINT", "UHUGEINT"})


def _is_integer(source: Source, column: str) -> bool:
    """Is the column an integer column of a DuckDB relation (a frame's columns are hashed instead)."""
    types = getattr(source, "column_types", None)
    return types is not None and types().get(column, "").upper() in _INTEGER_TYPES


def _duplicates(source: Source, table: str, columns: list[str], limit: int) -> tuple[int, list[str]]:
    """Rows whose value of ``columns`` occurs more than once (rows with all of them null are ignored, as
    GX does): how many, and the first ``limit`` distinct labels (key columns, then the values), in key
    order. Runs in SQL over the whole table, so it needs no more than one chunk in Python."""
    keys = [c for c in KEYS[table] if c in source.columns]
    shown = keys + [c for c in columns if c not in keys]
    quoted = [_quote(c) for c in columns]
    not_all_null = " or ".join(f"{c} is not null" for c in quoted)
    # identifiers: fixed suite column names, quoted; {t} is a fixed schema.table name.
    # Candidates first: a sort key whose value repeats (found as two equal neighbours after sorting, which
    # costs far less than grouping millions of distinct values), then only the candidate rows are grouped
    # by their values, exactly. The sort key is the column itself for one integer column (a generated row
    # number arrives nearly sorted, so the sort is cheap), otherwise a 64-bit hash of the columns (true
    # repeats and the rare collisions, which the exact grouping then drops).
    key = quoted[0] if len(columns) == 1 and _is_integer(source, columns[0]) else f"hash({', '.join(quoted)})"
    repeated_keys = (f"select k from (select k, k = lag(k) over (order by k) as again "  # noqa: S608
                     f"from (select {key} as k from {{t}} where {not_all_null})) where again")
    candidates = f"{key} in ({repeated_keys})"
    repeated = (f"select {', '.join(quoted)} from {{t}} where {not_all_null} and {candidates} "  # noqa: S608
                f"group by {', '.join(quoted)} having count(*) > 1")
    join = " and ".join(f"src.{c} is not distinct from rep.{c}" for c in quoted)
    order = ", ".join(f"src.{_quote(c)}" for c in shown)
    try:
        (count,), = source.query(f"select coalesce(sum(n), 0) from (select count(*) as n from {{t}} "  # noqa: S608
                                 f"where {not_all_null} and {candidates} group by {', '.join(quoted)} "
                                 f"having count(*) > 1)",
                                 list(dict.fromkeys(shown)))
        rows = source.query(f"select {order} from {{t}} as src join ({repeated}) as rep on {join} "  # noqa: S608
                            f"order by {order} limit ?", list(dict.fromkeys(shown)), [max(limit, 1) * 4]) if count else []
    except Exception as exc:  # noqa: BLE001 - a missing column or a SQL error is a failure of the run
        raise ChecksError(f"{table}: uniqueness of {', '.join(columns)} could not be computed: {exc}") from exc
    labels: list[str] = []
    for row in rows:
        values = dict(zip(shown, row, strict=True))
        label = "/".join(f"{k}={_text(values[k])}" for k in keys) or "row"
        extra = [f"{c}={_text(values[c])}" for c in columns if c not in keys]
        if extra:
            label += ": " + ", ".join(extra)
        if label not in labels:
            labels.append(label)
        if len(labels) >= limit:
            break
    return int(count), labels


@dataclass
class _Totals:
    """Table-level figures accumulated over the chunks (on the derived columns)."""

    rows: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, frame: pd.DataFrame, columns: set[str]) -> None:
        self.rows += len(frame)
        for column in columns:
            if column not in frame.columns:
                continue
            values = _numeric(frame[column]).dropna()
            self.sums[column] = self.sums.get(column, 0.0) + float(values.sum())
            self.counts[column] = self.counts.get(column, 0) + int(len(values))


def _table_level(expectation: Any, source: Source, table: str, totals: _Totals,
                 parameters: Mapping[str, float], config: CheckConfig) -> _Finding | None:
    """Evaluate one table-level expectation over the whole table; ``None`` when it passes."""
    kind = expectation.expectation_type
    kwargs = _resolved(expectation.configuration.kwargs, parameters)
    if kind in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        count, labels = _duplicates(source, table, _target_columns(kwargs), config.max_offending_keys)
        return _Finding(labels, count) if count else None
    if kind == "expect_table_row_count_to_equal":
        if isinstance(kwargs["value"], float) and kwargs["value"].is_integer():
            kwargs["value"] = int(kwargs["value"])  # as GX's integer-typed field shows it
        observed: Any = totals.rows
        passed = observed == kwargs["value"]
    else:
        column = kwargs["column"]
        if column not in source.columns and column not in totals.counts:
            raise ChecksError(f"{table}: column {column} missing for {kind}")
        total, count = totals.sums.get(column, 0.0), totals.counts.get(column, 0)
        observed = (total / count if count else None) if kind == "expect_column_mean_to_be_between" else total
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        passed = observed is not None and (low is None or observed >= low) and (high is None or observed <= high)
    if passed:
        return None
    offending, count_ = _offending({"observed_value": observed}, kwargs, pd.DataFrame(), KEYS[table],
                                  config.max_offending_keys)
    return _Finding(offending, count_)



def _sql_totals(source: Source, table: str, columns: set[str], totals: _Totals) -> None:
    """Sums and counts of numeric columns over the whole table, for the mean and sum expectations."""
    for column in sorted(columns):
        if column not in source.columns:
            continue
        value = f"try_cast({_quote(column)} as double)"  # a quoted suite column name
        sql = f"select coalesce(sum(v), 0), count(v) from (select {value} as v from {{t}}) where not isnan(v)"  # noqa: S608
        (total, count), = source.query(sql, [column])
        totals.sums[column] = float(total)
        totals.counts[column] = int(count)
