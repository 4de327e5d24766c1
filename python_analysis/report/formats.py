"""One number format per kind, and human labels for column names.

Kinds: counts (``count``: ``1,234``), shares (``pct``: ``12.3%``), p- and q-values (``p``: ``< 0.001`` or
three decimals), effect sizes and correlations (``signed``: ``+0.52``), and every other measurement
(``num``: three significant figures, thousands separated). Every table cell and every sentence uses these.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

MISSING = "n/a"


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, str):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def count(value: Any) -> str:
    """A whole number with thousands separators."""
    v = _float(value)
    return MISSING if v is None else f"{round(v):,}"


def num(value: Any, digits: int = 3) -> str:
    """A measurement to ``digits`` significant figures (whole numbers of 4+ digits stay whole)."""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    v = _float(value)
    if v is None:
        return MISSING if not isinstance(value, str) else value
    if v == 0:
        return "0"
    if abs(v) >= 10 ** digits:
        return f"{round(v):,}"
    magnitude = math.floor(math.log10(abs(v)))
    decimals = max(0, digits - 1 - magnitude)
    text = f"{v:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def pct(value: Any, decimals: int = 1) -> str:
    """A share as a percentage with one decimal."""
    v = _float(value)
    return MISSING if v is None else f"{v:.{decimals}%}"


def p(value: Any) -> str:
    """A p- or q-value: ``< 0.001`` below one in a thousand, else three decimals."""
    v = _float(value)
    if v is None:
        return MISSING
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def p_clause(value: Any) -> str:
    """``p`` for a sentence: '< 0.001' or '= 0.042'."""
    text = p(value)
    return text if text.startswith("<") or text == MISSING else "= " + text


def signed(value: Any, decimals: int = 2) -> str:
    """An effect size or correlation with its sign: ``+0.52``."""
    v = _float(value)
    return MISSING if v is None else f"{v:+.{decimals}f}"


def text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if value is np.nan or value is getattr(__import__("pandas"), "NA", None):
        return ""
    return str(value)


def yes_no(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return "yes" if bool(value) else "no"


Formatter = Callable[[Any], str]

# The format of a column, by name: what a column means decides how it prints, wherever it appears.
COLUMN_FORMATS: dict[str, Formatter] = {}
for _name in ("record_count", "distinct_customers", "anomaly_count", "above_count", "below_count", "n_anomaly",
              "n_normal", "issue_count", "input_rows", "clean_rows", "rejected_rows", "records_in_grain",
              "dropped_by_grain", "records", "customers", "anomaly_records", "anomaly_customers", "normal_count",
              "anomaly_hits", "anomaly_total", "normal_hits", "normal_total", "size", "k", "conflicting_keys",
              "rank", "anomaly_rank", "leaf_records", "records_in_leaf"):
    COLUMN_FORMATS[_name] = count
for _name in ("anomaly_rate", "anomaly_share", "share", "anomaly_hit_rate", "normal_hit_rate", "precision_in_sample",
              "recall_in_sample", "precision_cv", "recall_cv", "purity", "anomaly_coverage", "highest_rate"):
    COLUMN_FORMATS[_name] = pct
for _name in ("p_value", "q_value", "pearson_p", "spearman_p", "fisher_p", "fisher_q"):
    COLUMN_FORMATS[_name] = p
for _name in ("rank_biserial", "pearson", "spearman", "delta", "retention_deviation", "deviation"):
    COLUMN_FORMATS[_name] = signed
for _name in ("is_reconciled", "is_conflicting", "conflicting_copies"):
    COLUMN_FORMATS[_name] = yes_no


def cell(column: str, value: Any) -> str:
    """A table cell: the column's format, else text for text and ``num`` for numbers."""
    formatter = COLUMN_FORMATS.get(column)
    if formatter is not None:
        return formatter(value)
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return num(value)


# Human labels for column names (a column without one shows its name with spaces).
LABELS: dict[str, str] = {
    "profitability_segment": "Segment",
    "record_count": "Records",
    "distinct_customers": "Customers",
    "avg_retention": "Mean retention",
    "anomaly_count": "Anomaly records",
    "above_count": "Above mean",
    "below_count": "Below mean",
    "anomaly_rate": "Anomaly rate",
    "anomaly_share": "Share of anomalies",
    "feature_name": "Feature",
    "n_anomaly": "Anomaly records (n)",
    "mean_anomaly": "Mean, anomalies",
    "median_anomaly": "Median, anomalies",
    "n_normal": "Normal records (n)",
    "mean_normal": "Mean, normal",
    "median_normal": "Median, normal",
    "rank_biserial": "Effect r",
    "p_value": "p",
    "q_value": "q",
    "verdict": "Verdict",
    "direction": "Direction",
    "customer_id": "Customer",
    "subsidiary_id": "Subsidiary",
    "segmentation_date": "Segmentation date",
    "customer_name": "Name",
    "retention_probability": "Retention",
    "segment_avg_retention": "Segment mean",
    "retention_deviation": "Deviation",
    "deviation_direction": "Direction",
    "conflicting_copies": "Conflicting copies",
    "anomaly_rank": "Rank",
    "source": "Source",
    "input_rows": "Input rows",
    "clean_rows": "Clean rows",
    "rejected_rows": "Rejected rows",
    "records_in_grain": "Records in grain",
    "dropped_by_grain": "Dropped by grain",
    "is_reconciled": "Reconciled",
    "severity": "Severity",
    "column_name": "Column",
    "reason": "Reason",
    "issue_count": "Rows",
    "example_keys": "Examples",
    "dimension": "Dimension",
    "dimension_value": "Value",
    "normal_count": "Normal records",
    "chi2": "Chi-square",
    "cramers_v": "Cramér's V",
    "highest_rate": "Highest rate",
    "highest_value": "Highest at",
    "rule_name": "Rule",
    "operator": "Operator",
    "threshold": "Threshold",
    "anomaly_hits": "Anomaly hits",
    "anomaly_total": "Anomalies",
    "normal_hits": "Normal hits",
    "normal_total": "Normal records",
    "anomaly_hit_rate": "Hit rate, anomalies",
    "normal_hit_rate": "Hit rate, normal",
    "lift_pp": "Lift (pp)",
    "group": "Group",
    "pearson": "Pearson r",
    "spearman": "Spearman ρ",
    "pearson_p": "Pearson p",
    "spearman_p": "Spearman p",
    "n": "n",
    "cluster_id": "Cluster",
    "cluster_label": "Label",
    "size": "Records",
    "share": "Share",
    "silhouette": "Silhouette",
    "inertia": "Inertia",
    "k": "K",
    "segment": "Segment",
    "precision_in_sample": "Precision (in-sample)",
    "recall_in_sample": "Recall (in-sample)",
    "precision_cv": "Precision (CV)",
    "recall_cv": "Recall (CV)",
    "support": "Records",
    "feature": "Feature",
    "importance": "Importance",
    "kind": "Kind",
    "change_type": "Change",
    "previous_segment": "Segment before",
    "current_segment": "Segment now",
    "previous_retention": "Retention before",
    "current_retention": "Retention now",
    "was_anomaly": "Was anomaly",
    "is_anomaly": "Is anomaly",
    "changed_at": "Recorded at",
    "conflicting_keys": "Conflicting keys",
    "records": "Records",
    "anomaly_records": "Anomaly records",
    "min_retention": "Lowest retention",
    "customers": "Customers",
    "anomaly_customers": "Anomaly customers",
    "customers_compared": "Customers compared",
    "anomaly_customers_compared": "Anomaly customers compared",
    "values": "Values",
    "dof": "Degrees of freedom",
    "highest_rate_value": "Highest rate at",
    "records_of_customer": "Records of the customer",
    "duplicate_key": "Repeated key",
    "max_retention": "Highest retention",
}


def label(column: str) -> str:
    """The human label of a column: its entry in ``LABELS``, else its name in words, capitalised."""
    if column in LABELS:
        return LABELS[column]
    words = column.replace("_", " ").strip()
    return words[:1].upper() + words[1:]
