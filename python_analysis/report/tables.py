"""Tables derived from the marts for the report and its CSV exports: segment order, the anomaly list by
customer, data-quality issues grouped by reason, and the changes since the last build."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..analysis import DataQualitySummary, as_bool, numeric_column, text_column
from ..errors import SegfitError
from ..profile import DataProfile

# anomalies.csv: one row per row of marts.classification_anomalies, in anomaly_rank order, these columns
ANOMALY_ID_COLUMNS = ("anomaly_rank", "customer_id", "subsidiary_id", "segmentation_date", "customer_name",
                      "profitability_segment")
ANOMALY_RETENTION_COLUMNS = ("retention_probability", "segment_avg_retention", "retention_deviation",
                             "deviation_direction")
# the inputs of the four dimensions the report tests (stability, seasonality, lifecycle, value)
ANOMALY_FEATURE_COLUMNS = ("transaction_value_volatility", "txn_consistency_error", "seasonality_imbalance",
                           "seasonal_preference", "lifecycle_stage", "customer_age_days", "total_revenue",
                           "comprehensive_customer_score")
ANOMALY_EXTRA_COLUMNS = ("cluster_id", "cluster_label", "records_of_customer", "duplicate_key",
                         "conflicting_copies", "customer_record_id")
ANOMALY_COLUMNS = ANOMALY_ID_COLUMNS + ANOMALY_RETENTION_COLUMNS + ANOMALY_FEATURE_COLUMNS + ANOMALY_EXTRA_COLUMNS


def segment_order(fit: pd.DataFrame, profile: DataProfile) -> tuple[str, ...]:
    """Segments in value order, lowest first: by band when one feature separates them, else by median
    total_revenue, else by mean retention; ties by name."""
    if "profitability_segment" not in fit.columns or not len(fit):
        return ()
    if profile.band_feature:
        return tuple(b.segment for b in profile.bands)
    segment = text_column(fit, "profitability_segment")
    for column, how in (("total_revenue", "median"), ("retention_probability", "mean")):
        if column in fit.columns:
            values = pd.Series(numeric_column(fit, column), index=fit.index)
            if values.notna().any():
                key = values.groupby(segment).agg(how)
                frame = pd.DataFrame({"key": key, "name": key.index}).sort_values(["key", "name"], na_position="last")
                return tuple(frame["name"])
    return tuple(sorted(segment.unique()))


def in_segment_order(frame: pd.DataFrame, order: tuple[str, ...], column: str = "profitability_segment"
                     ) -> pd.DataFrame:
    """Rows sorted by the position of their segment in ``order`` (unknown segments last, by name)."""
    if not len(frame) or column not in frame.columns:
        return frame
    rank = {s: i for i, s in enumerate(order)}
    names = text_column(frame, column)
    key = names.map(lambda s: rank.get(s, len(rank)))
    return frame.assign(_k=key.to_numpy(), _n=names.to_numpy()).sort_values(
        ["_k", "_n"], kind="mergesort").drop(columns=["_k", "_n"]).reset_index(drop=True)


def _key_flags(frame: pd.DataFrame, keys: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """Per record: its (customer_id, subsidiary_id) key repeats; that key's copies disagree."""
    if keys is None or not len(keys) or not len(frame):
        return np.zeros(len(frame), dtype=bool), np.zeros(len(frame), dtype=bool)
    key_of = keys.assign(_c=text_column(keys, "customer_id"), _s=text_column(keys, "subsidiary_id"),
                         _conf=as_bool(keys["is_conflicting"]))[["_c", "_s", "_conf"]].drop_duplicates(["_c", "_s"])
    rows = pd.DataFrame({"_c": text_column(frame, "customer_id").to_numpy(),
                         "_s": text_column(frame, "subsidiary_id").to_numpy()})
    joined = rows.merge(key_of, on=["_c", "_s"], how="left", indicator=True)
    return (joined["_merge"] == "both").to_numpy(), joined["_conf"].fillna(False).astype(bool).to_numpy()


def anomaly_export(anomalies: pd.DataFrame, assignments: pd.DataFrame, keys: pd.DataFrame | None) -> pd.DataFrame:
    """Every anomaly record, identified by customer (subsidiary and date tell repeated records apart), with
    its retention, deviation, the dimension inputs, its cluster and its duplicate flags."""
    needed = [c for c in ANOMALY_COLUMNS[:-6] + ("customer_record_id",) if c != "anomaly_rank"]
    missing = [c for c in needed if c not in anomalies.columns]
    if missing and len(anomalies.columns):
        raise SegfitError(f"classification_anomalies lacks column(s) the report needs: {', '.join(missing)}")
    frame = anomalies.copy()
    if "anomaly_rank" not in frame.columns:
        frame["anomaly_rank"] = np.arange(1, len(frame) + 1)
    for column in needed:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype=object)
    frame = frame.sort_values(["anomaly_rank", "customer_record_id"], kind="mergesort").reset_index(drop=True)
    clusters = assignments[["customer_record_id", "cluster_id", "cluster_label"]] if len(assignments) else \
        pd.DataFrame({"customer_record_id": pd.Series(dtype=object), "cluster_id": pd.Series(dtype="Int64"),
                      "cluster_label": pd.Series(dtype=object)})
    frame = frame.merge(clusters, on="customer_record_id", how="left", validate="one_to_one")
    frame["records_of_customer"] = frame.groupby(text_column(frame, "customer_id"))["customer_record_id"] \
        .transform("size").astype("int64")
    frame["duplicate_key"], frame["conflicting_copies"] = _key_flags(frame, keys)
    frame["cluster_id"] = pd.to_numeric(frame["cluster_id"], errors="coerce").astype("Int64")
    return frame[list(ANOMALY_COLUMNS)]


def top_customers(anomalies: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` customers with the largest deviation on any of their anomaly records (rank order)."""
    first = anomalies.drop_duplicates("customer_id", keep="first")
    return first.head(n).reset_index(drop=True)


def issues_in_order(issues: pd.DataFrame | None) -> pd.DataFrame:
    """The data_quality_issues mart sorted by source, then data row number (as a number), then issue id."""
    if issues is None:
        return pd.DataFrame()
    frame = issues.copy()
    order = [c for c in ("source", "source_row_number", "issue_id") if c in frame.columns]
    return frame.sort_values(order, kind="mergesort").reset_index(drop=True) if order else frame


# details that make each row's reason unique: grouping drops them, the CSV keeps them
_REASON_DETAILS = (
    re.compile(r",? ?\(?first seen at data row \d+\)?"),
    re.compile(r" \(\d+ records with this spelling\)"),
    re.compile(r" \(\d+\)$"),
)


def reason_kind(reason: str) -> str:
    for pattern in _REASON_DETAILS:
        reason = pattern.sub("", reason)
    return reason


def issues_by_reason(issues: pd.DataFrame | None, dq: DataQualitySummary) -> pd.DataFrame:
    """Issues grouped by (source, severity, column, kind of reason): rows, and the first three row keys."""
    columns = ["source", "severity", "column_name", "reason", "issue_count", "example_keys"]
    if issues is None or not len(issues):
        groups = dq.issues_by_reason.assign(example_keys="")
        return groups[columns] if len(groups) else pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    frame = issues_in_order(issues)
    frame = frame.assign(**{c: text_column(frame, c, missing="") for c in ("source", "severity", "column_name",
                                                                              "reason", "row_key")})
    frame["reason"] = frame["reason"].map(reason_kind)
    grouped = frame.groupby(["source", "severity", "column_name", "reason"], sort=True).agg(
        issue_count=("reason", "size"), example_keys=("row_key", lambda s: ", ".join(dict.fromkeys(s))
                                                      if s.nunique() <= 3 else ", ".join(list(dict.fromkeys(s))[:3])
                                                      + ", …"))
    grouped = grouped.reset_index()
    grouped["_sev"] = (grouped["severity"] != "rejected").astype(int)
    grouped = grouped.sort_values(["_sev", "issue_count", "source", "column_name", "reason"],
                                  ascending=[True, False, True, True, True], kind="mergesort")
    return grouped[columns].reset_index(drop=True)


CHANGE_ORDER = ("became_anomaly", "new_anomaly", "stopped_being_anomaly", "gone_anomaly")


def changes_in_order(changes: pd.DataFrame | None) -> pd.DataFrame | None:
    if changes is None:
        return None
    frame = changes.copy()
    if not len(frame):
        return frame
    kind = text_column(frame, "change_type")
    frame["_k"] = kind.map(lambda k: CHANGE_ORDER.index(k) if k in CHANGE_ORDER else len(CHANGE_ORDER))
    frame["_c"] = text_column(frame, "customer_id")
    return frame.sort_values(["_k", "_c"], kind="mergesort").drop(columns=["_k", "_c"]).reset_index(drop=True)


def in_feature_order(comparison: pd.DataFrame, mart: pd.DataFrame) -> pd.DataFrame:
    """The feature table in the mart's own ``feature_order`` (the dbt model's list), so a feature added in dbt
    appears in its place without a Python edit; features without an order follow by name."""
    if not len(comparison) or "feature_order" not in mart.columns:
        return comparison
    order = mart.assign(_f=text_column(mart, "feature_name"), _o=pd.to_numeric(mart["feature_order"], errors="coerce"))
    rank = order.groupby("_f")["_o"].min()
    key = comparison["feature_name"].map(rank)
    return comparison.assign(_o=key.to_numpy()).sort_values(["_o", "feature_name"], kind="mergesort",
                                                            na_position="last").drop(columns="_o").reset_index(drop=True)
