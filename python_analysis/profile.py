"""Data profile that feeds the statistics: constant columns, identical columns, segment bands.

Pure functions over the ``customer_segment_fit`` frame, returning dataclasses and numbers (no sentences).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from .analysis import numeric_column, text_column
from .config import BEHAVIOUR_CATEGORICAL, BEHAVIOUR_NUMERIC


@dataclass(frozen=True)
class Band:
    segment: str
    min: float
    max: float


@dataclass(frozen=True)
class DataProfile:
    """``constant_columns``: one distinct non-null value (or all null) on every record.
    ``identical_columns``: pairs (first, second) equal on every record (nulls at the same places).
    ``band_feature``: a numeric feature whose per-segment [min, max] ranges do not overlap (None if none)."""

    records: int
    constant_columns: tuple[str, ...]
    all_null_columns: tuple[str, ...]
    identical_columns: tuple[tuple[str, str], ...]
    band_feature: str | None
    bands: tuple[Band, ...]

    @property
    def redundant_columns(self) -> tuple[str, ...]:
        """Columns to drop before modelling: constant, all-null, and the second of each identical pair."""
        seconds = tuple(b for _, b in self.identical_columns)
        return tuple(dict.fromkeys(self.constant_columns + self.all_null_columns + seconds))


def constant_and_null_columns(
    fit: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    constant, null = [], []
    for column in [*numeric, *categorical]:
        if column not in fit.columns or not len(fit):
            continue
        if column in numeric:
            values = numeric_column(fit, column)
            values = values[np.isfinite(values)]
            if not len(values):
                null.append(column)
            elif values.min() == values.max():
                constant.append(column)
        else:
            text = fit[column].astype("string").str.strip().replace("", pd.NA)
            distinct = text.nunique(dropna=True)
            if distinct == 0:
                null.append(column)
            elif distinct == 1:
                constant.append(column)
    return tuple(constant), tuple(null)


def identical_columns(fit: pd.DataFrame, numeric: Sequence[str], skip: Sequence[str] = ()) -> tuple[
    tuple[str, str], ...
]:
    """Pairs of numeric columns equal on every record (in ``numeric`` order; the first of a pair is kept)."""
    columns = [c for c in numeric if c in fit.columns and c not in set(skip)]
    values = {c: numeric_column(fit, c) for c in columns}
    head = {c: v[:1000] for c, v in values.items()}
    pairs = []
    matched: set[str] = set()
    for i, a in enumerate(columns):
        if a in matched or np.isnan(values[a]).all():
            continue
        for b in columns[i + 1 :]:
            if b in matched or not np.array_equal(head[a], head[b], equal_nan=True):
                continue  # the first 1,000 values already differ
            if np.array_equal(values[a], values[b], equal_nan=True):
                pairs.append((a, b))
                matched.add(b)
    return tuple(pairs)


def segment_bands(
    fit: pd.DataFrame, numeric: Sequence[str], skip: Sequence[str] = ()
) -> tuple[str | None, tuple[Band, ...]]:
    """The first numeric feature (in ``numeric`` order) whose per-segment ranges are disjoint intervals."""
    if "profitability_segment" not in fit.columns or not len(fit):
        return None, ()
    segment = text_column(fit, "profitability_segment")
    if segment.nunique() < 2:
        return None, ()
    for column in numeric:
        if column not in fit.columns or column in set(skip):
            continue
        values = pd.Series(numeric_column(fit, column), index=fit.index)
        if values.isna().any():
            continue
        ranges = values.groupby(segment, sort=True).agg(["min", "max"]).sort_values(["min", "max"])
        lo, hi = ranges["min"].to_numpy(), ranges["max"].to_numpy()
        if len(ranges) >= 2 and bool(np.all(hi[:-1] < lo[1:])):
            bands = tuple(Band(str(s), float(r["min"]), float(r["max"])) for s, r in ranges.iterrows())
            return column, bands
    return None, ()


def data_profile(fit: pd.DataFrame) -> DataProfile:
    numeric = [c for c in BEHAVIOUR_NUMERIC if c in fit.columns]
    categorical = [c for c in BEHAVIOUR_CATEGORICAL if c in fit.columns]
    constant, null = constant_and_null_columns(fit, numeric, categorical)
    pairs = identical_columns(fit, numeric, skip=constant + null)
    redundant = set(constant + null) | {b for _, b in pairs}
    band_feature, bands = segment_bands(fit, numeric, skip=sorted(redundant))
    return DataProfile(
        records=int(len(fit)),
        constant_columns=constant,
        all_null_columns=null,
        identical_columns=pairs,
        band_feature=band_feature,
        bands=bands,
    )


def _segment_label(value: object) -> str:
    """``text_column(fit, "profitability_segment")`` for one value: null or blank -> '(missing)'."""
    if value is None:
        return "(missing)"
    text = str(value)
    return "(missing)" if text.strip() == "" else text


def data_profile_sql(con: duckdb.DuckDBPyConnection, relation: str, columns: Sequence[str], records: int,
                     distinct_limit: int = 1000, head_rows: int = 4096) -> DataProfile:
    """``data_profile`` of the table ``relation`` (a fixed, trusted name; ``columns``: its columns, ``records``:
    its rows), computed in DuckDB over every record without reading the table into pandas (#11). The same
    profile: minimum, maximum and equality are exact in SQL; a numeric value is ``try_cast(... as double)``
    (what ``numeric_column`` gives for the mart's numeric types); text is stripped and compared in Python."""
    if not records:
        return DataProfile(0, (), (), (), None, ())
    quoted = {c: '"' + c.replace('"', '""') + '"' for c in columns}
    numeric = [c for c in BEHAVIOUR_NUMERIC if c in columns]
    categorical = [c for c in BEHAVIOUR_CATEGORICAL if c in columns]
    x = {c: f"try_cast({quoted[c]} as double)" for c in numeric}
    # min / max / count of each column; DuckDB orders NaN above +inf, so finite extremes mean only finite values
    # (nulls aside); a column with NaN or an infinity is aggregated again over its finite values
    parts = [f"min({x[c]}), max({x[c]}), count({x[c]})" for c in numeric]
    stats = list(con.execute(f"select {', '.join(parts) or '1'} from {relation}").fetchall()[0])  # noqa: S608
    constant, null = [], []
    for i, c in enumerate(numeric):
        lo, hi, finite = stats[3 * i: 3 * i + 3]
        if finite and not (math.isfinite(lo) and math.isfinite(hi)):
            finite, lo, hi = con.execute(
                f"select count(*), min(v), max(v) from (select {x[c]} as v from {relation}) where isfinite(v)"  # noqa: S608
            ).fetchall()[0]
        if not finite:
            null.append(c)
        elif lo == hi:
            constant.append(c)
    for c in categorical:
        distinct = _distinct_stripped(con, relation, quoted[c], distinct_limit)
        if distinct == 0:
            null.append(c)
        elif distinct == 1:
            constant.append(c)
    skip = set(constant + null)
    pairs = _identical_columns_sql(con, relation, [c for c in numeric if c not in skip], x, head_rows)
    redundant = skip | {b for _, b in pairs}
    band_feature, bands = _segment_bands_sql(con, relation, columns, numeric, quoted, x, sorted(redundant))
    return DataProfile(records=int(records), constant_columns=tuple(constant), all_null_columns=tuple(null),
                       identical_columns=tuple(pairs), band_feature=band_feature, bands=bands)


def _identical_columns_sql(con: duckdb.DuckDBPyConnection, relation: str, candidates: Sequence[str],
                           x: dict[str, str], head_rows: int) -> list[tuple[str, str]]:
    """``identical_columns`` over ``candidates`` (numeric, none constant or all-null), compared in SQL (only the
    pairs equal on the first ``head_rows`` rows, compared in numpy, are compared on every record)."""
    pairs_sql = [(a, b) for i, a in enumerate(candidates) for b in candidates[i + 1:]]
    if pairs_sql and head_rows:  # only the pairs equal on a first few thousand rows are compared on every record
        head = con.execute(f"select {', '.join(x[c] for c in candidates)} from {relation} limit ?",  # noqa: S608
                           [head_rows]).fetchnumpy()
        values = dict(zip(candidates, (np.ma.filled(np.ma.asarray(v, dtype="float64"), np.nan)
                                       for v in head.values()), strict=True))
        pairs_sql = [(a, b) for a, b in pairs_sql if np.array_equal(values[a], values[b], equal_nan=True)]
    equal = dict.fromkeys(((a, b) for i, a in enumerate(candidates) for b in candidates[i + 1:]), False)
    if pairs_sql:
        row = con.execute("select " + ", ".join(  # noqa: S608 - quoted names
            f"coalesce(bool_and(coalesce({x[a]}, 'nan'::double) = coalesce({x[b]}, 'nan'::double)), true)"
            for a, b in pairs_sql) + f" from {relation}").fetchall()[0]
        equal.update(zip(pairs_sql, (bool(v) for v in row), strict=True))
    pairs, matched = [], set()
    for i, a in enumerate(candidates):  # identical_columns' loop (no candidate is all NaN: it has a finite value)
        if a in matched:
            continue
        for b in candidates[i + 1:]:
            if b not in matched and equal[(a, b)]:
                pairs.append((a, b))
                matched.add(b)
    return pairs


def _distinct_stripped(con: duckdb.DuckDBPyConnection, relation: str, column: str, limit: int) -> int:
    """``text.str.strip().replace('', NA).nunique()`` of ``column``, exact up to 2 (all the profile needs)."""
    sql = f"select distinct cast({column} as varchar) from {relation} where {column} is not null"  # noqa: S608
    values = con.execute(f"{sql} limit ?", [limit + 1]).fetchall()
    if len(values) > limit and len({str(v[0]).strip() for v in values} - {""}) < 2:
        values = con.execute(sql).fetchall()  # more spellings than the limit yet at most one value: read them all
    return len({str(v[0]).strip() for v in values} - {""})


def _segment_bands_sql(con: duckdb.DuckDBPyConnection, relation: str, columns: Sequence[str], numeric: Sequence[str],
                       quoted: dict[str, str], x: dict[str, str], skip: Sequence[str]
                       ) -> tuple[str | None, tuple[Band, ...]]:
    """``segment_bands`` from per-segment minima and maxima computed in SQL."""
    if "profitability_segment" not in columns:
        return None, ()
    tested = [c for c in numeric if c not in set(skip)]
    parts = [f"min({x[c]}), max({x[c]}), count(*) - count({x[c]})" for c in tested]
    segment = quoted["profitability_segment"]
    rows = con.execute(f"select cast({segment} as varchar){''.join(', ' + p for p in parts)} "  # noqa: S608
                       f"from {relation} group by 1").fetchall()
    labels = sorted({_segment_label(r[0]) for r in rows})
    if len(labels) < 2:
        return None, ()
    for i, column in enumerate(tested):
        if any(r[1 + 3 * i + 2] or math.isnan(r[1 + 3 * i + 1]) for r in rows):
            continue  # a missing value (null, or NaN: DuckDB's maximum when present): no band
        lo: dict[str, float] = {}
        hi: dict[str, float] = {}
        for r in rows:
            label, mn, mx = _segment_label(r[0]), r[1 + 3 * i], r[1 + 3 * i + 1]
            lo[label] = mn if label not in lo else min(lo[label], mn)
            hi[label] = mx if label not in hi else max(hi[label], mx)
        ranges = pd.DataFrame({"min": [lo[s] for s in labels], "max": [hi[s] for s in labels]},
                              index=pd.Index(labels)).sort_values(["min", "max"])
        low, high = ranges["min"].to_numpy(), ranges["max"].to_numpy()
        if len(ranges) >= 2 and bool(np.all(high[:-1] < low[1:])):
            return column, tuple(Band(str(s), float(r["min"]), float(r["max"])) for s, r in ranges.iterrows())
    return None, ()
