"""Derived columns: what is validated beyond the raw frame (``derived_frame`` shows exactly what)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from .contract import QUARTERS
from .results import CheckConfig, ChecksError


def _require(frame: pd.DataFrame, table: str, *columns: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ChecksError(f"{table}: column(s) {', '.join(missing)} missing from the frame")


def _bool_or_na(values: pd.Series) -> pd.Series:
    return values.astype("boolean")


def _numeric(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


def expected_anomaly_flag(fit: pd.DataFrame, config: CheckConfig) -> pd.Series:
    """The flag recomputed like the mart: round(|deviation| [/ segment avg], 10) > threshold (strict)."""
    deviation = _numeric(fit["retention_deviation"]).abs()
    if config.anomaly_threshold_mode == "relative":
        average = _numeric(fit["segment_avg_retention"])
        deviation = deviation / average.where(average != 0)
    elif config.anomaly_threshold_mode == "zscore":
        sd = _numeric(fit["segment_sd_retention"])
        deviation = deviation / sd.where(sd != 0)
    flag = deviation.round(10) > float(config.anomaly_threshold)
    return pd.Series(np.where(deviation.isna(), False, flag), index=fit.index, dtype=bool)


def _derive_fit(frame: pd.DataFrame, table: str, config: CheckConfig) -> pd.DataFrame:
    shares = [f"{q}_share" for q in QUARTERS]
    _require(frame, table, *shares, "retention_deviation", "segment_avg_retention", "is_classification_anomaly")
    share_values = frame[shares].apply(_numeric)
    frame["q_share_nulls"] = share_values.isna().sum(axis=1).astype("int64")
    frame["q_share_sum"] = share_values.sum(axis=1, min_count=4)
    deviation = _numeric(frame["retention_deviation"])
    below = deviation.round(10) < 0
    frame["expected_direction"] = pd.Series(np.where(below, "below", "above"), index=frame.index,
                                            dtype=object).where(deviation.notna())
    frame["expected_flag"] = expected_anomaly_flag(frame, config)
    frame["anomaly_flag_numeric"] = _bool_or_na(frame["is_classification_anomaly"]).astype("Float64")
    return frame


def _derive_seasonal(frame: pd.DataFrame, table: str, config: CheckConfig) -> pd.DataFrame:
    means = [f"{q}_share_mean" for q in QUARTERS]
    _require(frame, table, *means, "grouping_level", "profitability_segment")
    frame["q_share_mean_sum"] = frame[means].apply(_numeric).sum(axis=1, min_count=4)
    overall = frame["grouping_level"] == "overall"
    frame["segment_matches_level"] = (overall == frame["profitability_segment"].isna()).astype(bool)
    return frame


def _derive_sum(target: str, *parts: str) -> Callable[[pd.DataFrame, str, CheckConfig], pd.DataFrame]:
    def derive(frame: pd.DataFrame, table: str, config: CheckConfig) -> pd.DataFrame:
        _require(frame, table, *parts)
        frame[target] = sum((frame[p] for p in parts[1:]), frame[parts[0]])
        return frame

    return derive


def _derive_conflicting(frame: pd.DataFrame, table: str, config: CheckConfig) -> pd.DataFrame:
    """A conflict (same snapshot, different values) needs values that differ across the key's records."""
    _require(frame, table, "distinct_segments", "distinct_retention_values", "is_conflicting")
    possible = (_numeric(frame["distinct_segments"]) > 1) | (_numeric(frame["distinct_retention_values"]) > 1)
    flagged = _bool_or_na(frame["is_conflicting"]).fillna(False).astype(bool)
    frame["conflict_is_consistent"] = (~flagged | possible).astype(bool)
    return frame


DERIVATIONS: dict[str, Callable[[pd.DataFrame, str, CheckConfig], pd.DataFrame]] = {
    "customer_segment_fit": _derive_fit,
    "classification_anomalies": _derive_fit,
    "segment_retention_summary": _derive_sum("above_plus_below", "above_count", "below_count"),
    "seasonal_distribution": _derive_seasonal,
    "anomaly_crosstabs": _derive_sum("anomaly_plus_normal", "anomaly_count", "normal_count"),
    "input_row_reconciliation": _derive_sum("clean_plus_rejected", "clean_rows", "rejected_rows"),
    "duplicate_customer_keys": _derive_conflicting,
}


def derived_frame(table: str, frame: pd.DataFrame, config: CheckConfig) -> pd.DataFrame:
    """The frame GX validates for ``table``: a fresh RangeIndex, string columns as object (see
    TYPE_LISTS) and the derived check columns. The int_*_validated views hold only clean rows."""
    frame = frame.copy().reset_index(drop=True)
    for name in list(frame.columns):
        if isinstance(frame[name].dtype, pd.StringDtype):
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    derive = DERIVATIONS.get(table)
    if derive is None:
        return frame
    try:
        return derive(frame, table, config)
    except ChecksError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ChecksError(f"{table}: could not derive the check columns: {exc}") from exc
