"""Data profile that feeds the statistics: constant columns, identical columns, segment bands.

Pure functions over the ``customer_segment_fit`` frame, returning dataclasses and numbers (no sentences).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
