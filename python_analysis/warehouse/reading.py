"""Reading the marts: the tables the report and the checks read, checked against the dbt contracts."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .connections import bounded_read_only, read_only

if TYPE_CHECKING:
    from .population import Population

MARTS = (
    "customer_segment_fit",
    "classification_anomalies",
    "segment_retention_summary",
    "anomaly_feature_comparison",
    "seasonal_distribution",
    "anomaly_crosstabs",
    "anomaly_rule_lift",
    "data_quality_issues",
    "input_row_reconciliation",
    "duplicate_customer_keys",
)
CHECKED_INPUTS = ("int_customers_validated", "int_transactions_validated")
# read by the report besides MARTS: the run metadata and the changes since the previous build (not checked by GX)
REPORT_ONLY_MARTS = ("build_metadata", "customer_fit_changes")



def read_tables(path: Path, tables: Mapping[str, str],
                order_by: Mapping[str, str] | None = None,
                columns: Mapping[str, Sequence[str]] | None = None) -> dict[str, pd.DataFrame]:
    """Read ``{name: 'schema.table'}`` into DataFrames through one read-only connection; ``order_by`` maps a
    name to the (fixed, trusted) column its rows are read ordered by; ``columns`` maps a name to the columns
    read (default every column; names are checked and quoted, a column the table lacks is left out)."""
    frames = {}
    order_by = order_by or {}
    columns = columns or {}
    # bounded: DuckDB's share (the sort behind order_by) stays within SEGFIT_DUCKDB_MEMORY_LIMIT, spilling beyond it
    with bounded_read_only(path, "segfit-read-spill-") as con:
        for name, relation in tables.items():
            # the order is applied to the Arrow result (a stable sort of one column's indices, nulls last as in
            # DuckDB's ORDER BY, each column taken in that order while it is converted): DuckDB's sort of the
            # wide rows held ~0.5 GB more at 1M records and cost more CPU; with a column selection, in SQL
            order = f" order by {order_by[name]}" if name in order_by and name in columns else ""
            sort_by = order_by[name] if name in order_by and name not in columns else None
            select = "*"
            if name in columns:
                schema, _, table = relation.partition(".")
                present = {r[0] for r in con.execute(
                    "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
                    [schema, table]).fetchall()}
                select = ", ".join(_quoted(c) for c in columns[name] if c in present) or "*"
            frames[name] = fetch_frame(con, f"select {select} from {relation}{order}",  # noqa: S608 - fixed names
                                       sort_by=sort_by)
    return frames


def count_rows(path: Path, relation: str) -> int:
    """Rows of ``relation`` ('schema.table', a fixed, trusted name); 0 when the table is missing (the read that
    follows names what is missing)."""
    schema, _, table = relation.partition(".")
    with read_only(path) as con:
        found = con.execute("select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                            [schema, table]).fetchone()
        if not found or not found[0]:
            return 0
        row = con.execute(f"select count(*) from {_quoted(schema)}.{_quoted(table)}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def _quoted(column: str) -> str:
    if not _COLUMN.fullmatch(column):
        raise ValueError(f"bad column name {column!r}")
    return f'"{column}"'


_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def fetch_frame(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] | None = None,
                rows_per_batch: int = 122_880, sort_by: str | None = None) -> pd.DataFrame:
    """The result of ``sql`` as a DataFrame, through Arrow (no Python object per value), with the dtypes of
    DuckDB's own ``fetch_df``: an integer or boolean column with a null is a nullable pandas column, dates
    are ``datetime64[us]``, decimals ``float64``, text the pandas string dtype. ``sort_by``: the rows ordered
    by that column of the result, ascending, nulls last, ties in the result's order (``ORDER BY`` in DuckDB).

    (Through ``fetch_df`` a 1M-row fit mart took ~9 s, 3.6 s of it pandas building strings from Python objects.)
    """
    reader = con.sql(sql, params=list(params) if params else None).to_arrow_reader(rows_per_batch)
    # no reference to the Arrow table is kept here: arrow_to_frame frees its columns while converting them
    table = reader.read_all()
    order = None
    if sort_by is not None:
        order = pc.sort_indices(table, sort_keys=[(sort_by, "ascending", "at_end")])
    return arrow_to_frame(table, order)


def arrow_to_frame(table: pa.Table, order: pa.Array | None = None,
                   null_hints: Mapping[str, tuple[bool, bool]] | None = None) -> pd.DataFrame:
    """``table`` as a DataFrame with the dtypes DuckDB's ``fetch_df`` gives (see ``fetch_frame``), its rows taken
    in ``order`` (row indices) when given. Converted one column at a time, each Arrow column dropped once
    converted: the peak is about one copy of the data plus a column, not the Arrow table and the frame side by side.
    ``null_hints``: per column (has a null, is all null) in the table these rows were taken from, so that the
    rows get the dtypes the whole table's frame has (``population.Population.rows``)."""
    columns: dict[str, pd.Series] = {}
    n = table.num_rows
    while table.num_columns:
        name, values = table.column_names[0], table.column(0)
        table = table.remove_column(0)
        if order is not None:
            values = values.combine_chunks().take(order)
        columns[name] = _series(values, n, (null_hints or {}).get(name))
        del values
    frame = pd.DataFrame(index=pd.RangeIndex(n))
    for name, series in columns.items():  # one block per column, not copied into consolidated blocks
        frame[name] = series
    return frame


def _series(values: pa.ChunkedArray, n: int, hint: tuple[bool, bool] | None = None) -> pd.Series:
    kind = values.type
    has_null, all_null = hint if hint is not None else (bool(values.null_count), values.null_count == len(values))
    if pa.types.is_date(kind):
        values = values.cast(pa.timestamp("us"))
    elif pa.types.is_decimal(kind):
        values = values.cast(pa.float64())
    # an integer or boolean column with a null: DuckDB gives Int64 / boolean, to_pandas would give float64 / object
    mapper = _NULLABLE.get if kind in _NULLABLE and has_null else None
    series = values.to_pandas(types_mapper=mapper)
    if isinstance(series.dtype, pd.StringDtype) and (all_null if hint is not None else not series.notna().any()):
        return pd.Series([None] * n, dtype=object)  # DuckDB gives an empty or all-null text column the object dtype
    return series


_NULLABLE = {pa.bool_(): pd.BooleanDtype(), pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(),
             pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(),
             pa.uint16(): pd.UInt16Dtype(), pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype()}


# The row order the report reads the record-grain marts in: the input's order (a unique, engine-independent
# key). A table has no row order of its own, and the report's cross-validation folds follow the row order,
# so without it the same marts stored by another engine (Spark writes its rows in partition order) would
# give other folds and other scores.
READ_ORDER: dict[str, str] = {
    "customer_segment_fit": "source_row_number",
    "classification_anomalies": "anomaly_rank",
}


def read_marts(path: Path) -> dict[str, pd.DataFrame]:
    """The marts the report reads, in ``READ_ORDER``, checked against the dbt contracts of the build that
    wrote them."""
    from python_analysis import contracts

    marts = read_tables(path, {name: f"marts.{name}" for name in MARTS + REPORT_ONLY_MARTS}, order_by=READ_ORDER)
    contracts.require_columns(marts, contracts.for_build(path))
    return marts


def read_marts_bounded(path: Path) -> tuple[dict[str, pd.DataFrame], Population]:
    """``read_marts`` for large data, in bounded memory (#11): every mart but the fit mart is read whole; the fit
    mart is held by a ``Population`` (its base columns for every record, the rest read when needed), whose base
    frame is given as ``customer_segment_fit``. Checked against the dbt contracts like ``read_marts``."""
    from python_analysis import contracts

    from .population import Population

    names = [name for name in MARTS + REPORT_ONLY_MARTS if name != "customer_segment_fit"]
    marts = read_tables(path, {name: f"marts.{name}" for name in names}, order_by=READ_ORDER)
    meta = marts.get("build_metadata")
    # without build metadata (an older build) the run's threshold is read from the fit mart's first record
    population = Population(path, extra_base=() if meta is not None and len(meta)
                            else ("anomaly_threshold", "anomaly_threshold_mode"))
    contracts.require_columns({**marts, "customer_segment_fit": pd.DataFrame(columns=list(population.columns))},
                              contracts.for_build(path))
    marts["customer_segment_fit"] = population.base
    return marts, population


@contextlib.contextmanager
def checked_sources(path: Path) -> Iterator[tuple[dict[str, object], duckdb.DuckDBPyConnection]]:
    """The marts and the validated inputs as chunk-readable sources for the checks, over one read-only
    connection with DuckDB's memory limit (``SEGFIT_DUCKDB_MEMORY_LIMIT``, default 1GB; beyond it the
    uniqueness queries spill to a private temporary directory). Nothing is loaded here: the checks stream
    each table in bounded chunks (``checks.RelationSource``)."""
    from python_analysis.quality.sources import RelationSource

    with bounded_read_only(path, "segfit-check-spill-") as con:
        relations = {name: f"marts.{name}" for name in MARTS}
        relations.update({name: f"intermediate.{name}" for name in CHECKED_INPUTS})
        yield {name: RelationSource(con, relation) for name, relation in relations.items()}, con
