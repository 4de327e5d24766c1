"""Table sources: a frame already in memory, or a relation read in bounded chunks; the cross-table parameters."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from .results import ChecksError

CHUNK_CELLS_ENV = "SEGFIT_CHECK_CHUNK_CELLS"
DEFAULT_CHUNK_CELLS = 4_000_000


def chunk_cells_from_env() -> int:
    raw = os.environ.get(CHUNK_CELLS_ENV, "").strip()
    if not raw:
        return DEFAULT_CHUNK_CELLS
    try:
        cells = int(raw)
    except ValueError:
        cells = 0
    if cells < 1:
        raise ChecksError(f"{CHUNK_CELLS_ENV} must be a whole number >= 1, got {raw!r}")
    return cells


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class FrameSource:
    """A table that is already a DataFrame (tests, small tables): chunks are row slices of it."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        if len(self.frame) == 0:
            yield self.frame
            return
        for start in range(0, len(self.frame), rows):
            yield self.frame.iloc[start:start + rows]

    def query(self, sql: str, columns: list[str], params: list[Any] | None = None) -> list[tuple]:
        """Run ``sql`` (the table is ``{t}``) over the named columns of the frame, in an in-memory DuckDB."""
        import duckdb

        with contextlib.closing(duckdb.connect()) as con:
            con.register("checked_frame", self.frame[columns])
            return con.execute(sql.format(t="checked_frame"), params or []).fetchall()


class RelationSource:
    """A table or view in an open DuckDB connection, streamed in chunks; table-level figures in SQL."""

    def __init__(self, con: Any, relation: str) -> None:
        self.con = con
        self.relation = relation
        self._columns: list[str] | None = None

    @property
    def columns(self) -> list[str]:
        if self._columns is None:
            described = self.con.execute(f"select * from {self.relation} limit 0").description  # noqa: S608
            self._columns = [d[0] for d in described]
        return self._columns

    def column_types(self) -> dict[str, str]:
        described = self.con.execute(f"describe select * from {self.relation}").fetchall()  # noqa: S608
        return {str(row[0]): str(row[1]) for row in described}

    def row_count(self) -> int:
        (count,), = self.query("select count(*) from {t}", [])
        return int(count)

    def chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        """One pass over the relation in insertion order (DuckDB's default), ``rows`` rows per frame.

        DuckDB hands out 2048-row vectors from a streaming result; they are regrouped into frames of
        exactly ``rows`` rows, so only one chunk (plus one vector) is ever in memory."""
        result = self.con.execute(f"select * from {self.relation}")  # noqa: S608 - fixed names
        pending: list[pd.DataFrame] = []
        held = 0
        first: pd.DataFrame | None = None
        emitted = False
        while True:
            part = result.fetch_df_chunk(1)
            if first is None:
                first = part
            if not len(part):
                break
            pending.append(part)
            held += len(part)
            while held >= rows:
                whole = pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)
                yield whole.iloc[:rows].reset_index(drop=True)
                emitted = True
                rest = whole.iloc[rows:].reset_index(drop=True)
                pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
        if pending:
            yield pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)
        elif not emitted and first is not None:
            yield first  # an empty relation: one empty frame with its columns and types

    def query(self, sql: str, columns: list[str], params: list[Any] | None = None) -> list[tuple]:
        """Run ``sql`` with ``{t}`` standing for the relation (a fixed schema.table name)."""
        return self.con.execute(sql.format(t=self.relation), params or []).fetchall()


Source = FrameSource | RelationSource


def _as_source(table: pd.DataFrame | Source) -> Source:
    return FrameSource(table) if isinstance(table, pd.DataFrame) else table


def resolve_parameters(tables: Mapping[str, pd.DataFrame | Source]) -> dict[str, float]:
    """Values of the cross-table suite parameters that can be computed from ``tables``."""
    sources = {name: _as_source(table) for name, table in tables.items()}
    values: dict[str, float] = {}
    recon = sources.get("input_row_reconciliation")
    if recon is not None and {"source", "records_in_grain"} <= set(recon.columns):
        rows = recon.query("select try_cast(records_in_grain as double) from {t} where source = 'customers'",
                           ["source", "records_in_grain"])
        grain = [r[0] for r in rows if r[0] is not None and not math.isnan(r[0])]
        if len(grain) == 1:
            values["records_in_grain"] = float(grain[0])
    summary = sources.get("segment_retention_summary")
    if summary is not None and "anomaly_count" in summary.columns:
        (total,), = summary.query("select coalesce(sum(try_cast(anomaly_count as double)), 0) from {t}",
                                  ["anomaly_count"])
        values["summary_anomaly_total"] = float(total)
    fit = sources.get("customer_segment_fit")
    if fit is not None:
        if "is_classification_anomaly" in fit.columns:
            (count, flagged), = fit.query(
                "select count(*), count(*) filter (where try_cast(is_classification_anomaly as boolean)) from {t}",
                ["is_classification_anomaly"])
            values["fit_anomaly_count"] = float(flagged)
        else:
            (count,), = fit.query("select count(*) from {t}", fit.columns[:1])
        values["fit_row_count"] = float(count)
    return values
