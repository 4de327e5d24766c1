"""Row-by-row comparison of the marts of a DuckDB build and a Spark build of the same input.

The Spark marts are read straight from their Parquet folders (``<warehouse>/marts.db/<mart>/``) with
pyarrow, the DuckDB marts with DuckDB; both are sorted by the mart's key and compared cell by cell:
integers, text, booleans and timestamps exactly, doubles within 1e-12 relative (``rel_tol``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

# Every mart and the columns that order it (a unique key; data_quality_issues' issue_id is a hash of its key).
MART_KEYS: dict[str, tuple[str, ...]] = {
    "customer_segment_fit": ("customer_record_id",),
    "classification_anomalies": ("anomaly_rank",),
    "segment_retention_summary": ("profitability_segment",),
    "anomaly_feature_comparison": ("feature_name", "anomaly_group"),
    "seasonal_distribution": ("seasonal_distribution_id",),
    "anomaly_crosstabs": ("dimension", "dimension_value"),
    "anomaly_rule_lift": ("rule_name",),
    "data_quality_issues": ("issue_id",),
    "input_row_reconciliation": ("source",),
    "duplicate_customer_keys": ("customer_id", "subsidiary_id"),
    "customer_fit_changes": ("customer_id",),
    "build_metadata": ("source",),
}
# Run metadata: what differs between any two builds, whatever the engine.
RUN_METADATA: dict[str, tuple[str, ...]] = {
    "build_metadata": ("dbt_invocation_id", "built_at"),
    "customer_fit_changes": ("changed_at",),
}
REL_TOL = 1e-12
# Columns that are differences of two O(1) quantities (retention - segment average; |z(revenue) - z(score)|):
# a last-bit difference in an average or a standard deviation, which no engine fixes (the summation order
# of a parallel aggregate is not defined), becomes a large *relative* difference when the result is near
# 0. For these the 1e-12 is relative to the operands' scale (1), not to the result.
OPERAND_SCALE: dict[str, float] = {"retention_deviation": 1.0, "abs_retention_deviation": 1.0,
                                   "value_mismatch_z": 1.0}


@dataclass
class MartDiff:
    mart: str
    rows: tuple[int, int]
    columns_only_in: dict[str, list[str]] = field(default_factory=dict)
    cells: list[str] = field(default_factory=list)  # the first differing cells, described
    differing_cells: int = 0
    max_rel_diff: float = 0.0

    @property
    def identical(self) -> bool:
        return self.rows[0] == self.rows[1] and not self.columns_only_in and not self.differing_cells


def _sort_key(value):
    # None sorts first, as in both engines' `nulls first`
    return (value is not None, value)


def _rows(table: list[dict], key: tuple[str, ...]) -> list[dict]:
    return sorted(table, key=lambda row: tuple(_sort_key(row[k]) for k in key))


def duckdb_mart(path: Path, mart: str) -> list[dict]:
    with duckdb.connect(str(path), read_only=True) as con:
        table = con.sql(f"select * from marts.{mart}").arrow()
        return (table.read_all() if hasattr(table, "read_all") else table).to_pylist()


def spark_mart(warehouse: Path, mart: str) -> list[dict]:
    return pq.read_table(warehouse / "marts.db" / mart).to_pylist()


def _same(a, b, scale: float = 0.0) -> tuple[bool, float]:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True, 0.0
        if a == b:
            return True, 0.0
        rel = abs(a - b) / max(abs(a), abs(b), scale)
        return rel <= REL_TOL, rel
    if hasattr(a, "tzinfo") and hasattr(b, "tzinfo") and (a.tzinfo is None) != (b.tzinfo is None):
        a, b = a.replace(tzinfo=None), b.replace(tzinfo=None)
    return a == b and type(a) is type(b), 0.0


def compare_mart(duck: list[dict], spark: list[dict], mart: str, limit: int = 8) -> MartDiff:
    key = MART_KEYS[mart]
    skip = set(RUN_METADATA.get(mart, ()))
    diff = MartDiff(mart, (len(duck), len(spark)))
    duck_columns = list(duck[0]) if duck else []
    spark_columns = list(spark[0]) if spark else []
    if duck and spark and duck_columns != spark_columns:
        diff.columns_only_in = {"duckdb": [c for c in duck_columns if c not in spark_columns],
                                "spark": [c for c in spark_columns if c not in duck_columns]}
        if not any(diff.columns_only_in.values()):
            diff.columns_only_in = {"order": duck_columns, "spark order": spark_columns}
    for left, right in zip(_rows(duck, key), _rows(spark, key), strict=False):
        for column in duck_columns:
            if column in skip or column not in right:
                continue
            same, rel = _same(left[column], right[column], OPERAND_SCALE.get(column, 0.0))
            diff.max_rel_diff = max(diff.max_rel_diff, rel)
            if not same:
                diff.differing_cells += 1
                if len(diff.cells) < limit:
                    where = ", ".join(f"{k}={left[k]!r}" for k in key)
                    diff.cells.append(f"{mart}[{where}].{column}: duckdb {left[column]!r} "
                                      f"({type(left[column]).__name__}) != spark {right[column]!r} "
                                      f"({type(right[column]).__name__})")
    return diff


def compare_warehouses(duckdb_path: Path, spark_warehouse: Path) -> dict[str, MartDiff]:
    return {mart: compare_mart(duckdb_mart(duckdb_path, mart), spark_mart(spark_warehouse, mart), mart)
            for mart in MART_KEYS}
