"""Descriptive statistics and tests over the marts: pure functions returning DataFrames or dataclasses."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .config import ReportConfig

# Order in which features are listed in tables (the interface's order); unknown features follow, sorted.
FEATURE_ORDER: tuple[str, ...] = (
    "transaction_count",
    "avg_transactions_per_month",
    "transaction_value_volatility",
    "customer_age_days",
    "total_revenue",
    "net_profit",
    "comprehensive_customer_score",
    "q1_share",
    "q2_share",
    "q3_share",
    "q4_share",
    "seasonality_std",
    "seasonality_imbalance",
    "seasonality_entropy_norm",
    "seasonality_cv",
    "txn_consistency_ratio",
    "txn_consistency_error",
    "quarterly_coverage_gap_ratio",
    "revenue_per_score",
    "value_mismatch_z",
)

SEGMENT_COLUMNS: tuple[str, ...] = (
    "profitability_segment",
    "record_count",
    "distinct_customers",
    "avg_retention",
    "anomaly_count",
    "above_count",
    "below_count",
    "anomaly_rate",
    "anomaly_share",
)


# --------------------------------------------------------------------------------------------- helpers
def as_bool(values: pd.Series) -> pd.Series:
    """Nullable/str/bool column -> plain bool (null -> False)."""
    if values.dtype == bool:
        return values
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.fillna(False).astype(bool)
    lowered = values.astype("string").str.strip().str.lower()
    return lowered.isin(["true", "t", "1", "yes", "y"]).fillna(False).astype(bool)


def anomaly_mask(fit: pd.DataFrame) -> np.ndarray:
    """Boolean array: is the record a classification anomaly."""
    if "is_classification_anomaly" not in fit.columns:
        return np.zeros(len(fit), dtype=bool)
    return as_bool(fit["is_classification_anomaly"]).to_numpy(dtype=bool)


def numeric_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Column as float64 (unparseable/missing -> NaN); all-NaN when the column is absent."""
    if column not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def text_column(frame: pd.DataFrame, column: str, missing: str = "(missing)") -> pd.Series:
    """Column as a pandas string Series (null/blank -> ``missing``)."""
    if column not in frame.columns:
        return pd.Series([missing] * len(frame), index=frame.index, dtype=object)
    out = frame[column].astype("string").fillna(missing)
    blank = out.str.strip() == ""
    if blank.any():
        out = out.mask(blank, missing)
    return out


def require_mart_columns(frame: pd.DataFrame, mart: str, columns: Sequence[str]) -> None:
    """The columns read from ``marts.<mart>`` are all there; a missing (renamed) one stops with one line
    (``contracts.require_columns``) instead of becoming an empty column of NaN."""
    from .contracts import Column, require_columns

    require_columns({mart: frame}, {mart: tuple(Column(c, None) for c in columns)})


def bounded_indices(n: int, size: int, random_state: int) -> np.ndarray:
    """Sorted positions of at most ``size`` rows out of ``n`` (all rows when n <= size); fixed seed."""
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n, size=size, replace=False))


def ordered_features(names: Sequence[str]) -> list[str]:
    known = [f for f in FEATURE_ORDER if f in set(names)]
    rest = sorted(set(names) - set(FEATURE_ORDER))
    return known + rest


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


# --------------------------------------------------------------------------------------------- sample
def sample_overview(
    fit: pd.DataFrame, summary: pd.DataFrame, anomalies: pd.DataFrame | None, grain: str
) -> dict[str, object]:
    """Record / customer / anomaly counts and records per segment."""
    mask = anomaly_mask(fit)
    customers = int(fit["customer_id"].nunique(dropna=True)) if "customer_id" in fit.columns else None
    per_segment = {
        str(row.profitability_segment): int(row.record_count) for row in summary.itertuples(index=False)
    }
    anomaly_records = int(len(anomalies)) if anomalies is not None else int(mask.sum())
    source = anomalies if anomalies is not None and "customer_id" in anomalies.columns else fit[mask]
    anomaly_customers = (
        int(text_column(source, "customer_id").nunique()) if "customer_id" in source.columns else None
    )
    sources = {}
    if "behaviour_source" in fit.columns:
        sources = {str(k): int(v) for k, v in text_column(fit, "behaviour_source").value_counts().items()}
    return {
        "grain": grain,
        "records": int(len(fit)),
        "distinct_customers": customers,
        "anomaly_records": anomaly_records,
        "anomaly_customers": anomaly_customers,
        "anomaly_records_in_fit_mart": int(mask.sum()),
        "anomaly_rate": (anomaly_records / len(fit)) if len(fit) else None,
        "records_per_segment": per_segment,
        "segments": len(per_segment),
        "behaviour_source": sources,
    }


# --------------------------------------------------------------------------------------------- segments
def segment_summary(segment_retention_summary: pd.DataFrame) -> pd.DataFrame:
    """The segment mart with typed columns, ordered by segment name."""
    frame = segment_retention_summary.copy()
    require_mart_columns(frame, "segment_retention_summary", SEGMENT_COLUMNS)
    frame = frame[list(SEGMENT_COLUMNS)]
    frame["profitability_segment"] = text_column(frame, "profitability_segment")
    for column in SEGMENT_COLUMNS[1:]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in ("record_count", "distinct_customers", "anomaly_count", "above_count", "below_count"):
        frame[column] = frame[column].fillna(0).astype("int64")
    return frame.sort_values("profitability_segment", kind="mergesort").reset_index(drop=True)


def segments_without_anomalies(summary: pd.DataFrame) -> list[str]:
    return sorted(summary.loc[summary["anomaly_count"] == 0, "profitability_segment"].tolist())


def anomaly_rate_check(summary: pd.DataFrame, config: ReportConfig) -> str | None:
    """A warning sentence when the overall anomaly rate falls outside ``config.anomaly_rate_band``."""
    records = int(summary["record_count"].sum())
    if records == 0:
        return "No records in the segment summary."
    rate = summary["anomaly_count"].sum() / records
    lo, hi = config.anomaly_rate_band
    if rate < lo:
        return (
            f"Overall anomaly rate {rate:.1%} is below {lo:.0%}: the threshold may be too loose to find "
            "enough anomalies for stable statistics."
        )
    if rate > hi:
        return (
            f"Overall anomaly rate {rate:.1%} is above {hi:.0%}: the threshold may be too tight; a large share "
            "of records 'does not fit', which says more about the threshold than about the segments."
        )
    return None


# --------------------------------------------------------------------------------------------- features
def feature_comparison(anomaly_feature_comparison: pd.DataFrame) -> pd.DataFrame:
    """Wide table from the mart: one row per feature with n/mean/median for anomaly and normal groups."""
    frame = anomaly_feature_comparison.copy()
    frame["feature_name"] = text_column(frame, "feature_name")
    frame["anomaly_group"] = text_column(frame, "anomaly_group")
    rows = []
    for feature in ordered_features(frame["feature_name"].unique().tolist()):
        row: dict[str, object] = {"feature_name": feature}
        for group in ("anomaly", "normal"):
            part = frame[(frame["feature_name"] == feature) & (frame["anomaly_group"] == group)]
            if part.empty:
                row.update({f"n_{group}": 0, f"mean_{group}": np.nan, f"median_{group}": np.nan})
                continue
            first = part.iloc[0]
            row[f"n_{group}"] = int(pd.to_numeric(first.get("n"), errors="coerce") or 0)
            row[f"mean_{group}"] = float(pd.to_numeric(first.get("mean_value"), errors="coerce"))
            row[f"median_{group}"] = float(pd.to_numeric(first.get("median_value"), errors="coerce"))
        rows.append(row)
    columns = [
        "feature_name",
        "n_anomaly",
        "mean_anomaly",
        "median_anomaly",
        "n_normal",
        "mean_normal",
        "median_normal",
    ]
    return pd.DataFrame(rows, columns=columns)


def mann_whitney(anomaly: np.ndarray, normal: np.ndarray) -> tuple[float, float, float]:
    """Two-sided Mann-Whitney U of anomaly vs normal: (U of the anomaly group, p-value, rank-biserial r).

    r = 2 U / (n1 n2) - 1 lies in [-1, 1]; r > 0 means anomaly values tend to be larger.
    """
    a = np.asarray(anomaly, dtype=float)
    b = np.asarray(normal, dtype=float)
    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan, math.nan
    result = stats.mannwhitneyu(a, b, alternative="two-sided")
    u = float(result.statistic)
    p = float(result.pvalue)
    if not math.isfinite(p):  # all values tied -> no evidence of a difference
        p = 1.0
    r = 2.0 * u / (len(a) * len(b)) - 1.0
    return u, p, r


def classify_difference(p_value: float, effect: float, config: ReportConfig) -> str:
    """'large' (p < alpha_large and |effect| >= effect_large), 'noise' (p >= alpha_noise), else 'small'."""
    if p_value is None or not math.isfinite(p_value):
        return "insufficient data"
    if p_value >= config.alpha_noise:
        return "noise"
    if p_value < config.alpha_large and abs(effect) >= config.effect_large:
        return "large"
    return "small"


def feature_significance(fit: pd.DataFrame, features: Sequence[str], config: ReportConfig,
                         frame_of: Callable[[Sequence[str]], pd.DataFrame] | None = None,
                         available: Sequence[str] | None = None) -> pd.DataFrame:
    """Mann-Whitney U (two-sided) anomaly vs normal per feature, on at most ``stat_sample_size`` per group.
    ``frame_of`` / ``available``: the records with a feature's column, read one feature at a time (large data
    read in bounded memory: ``fit`` then lacks the features), and the columns there are."""
    mask = anomaly_mask(fit)
    rows = []
    names = set(fit.columns if available is None else available)
    for offset, feature in enumerate(ordered_features([f for f in features if f in names])):
        values = numeric_column(fit if frame_of is None else frame_of([feature]), feature)
        a = values[mask]
        b = values[~mask]
        a = a[np.isfinite(a)]
        b = b[np.isfinite(b)]
        a_s = a[bounded_indices(len(a), config.stat_sample_size, config.random_state + offset)]
        b_s = b[bounded_indices(len(b), config.stat_sample_size, config.random_state + 1000 + offset)]
        u, p, r = mann_whitney(a_s, b_s)
        verdict = classify_difference(p, r, config)
        if not math.isfinite(r) or r == 0:
            direction = "no difference"
        else:
            direction = "higher in anomalies" if r > 0 else "lower in anomalies"
        rows.append(
            {
                "feature_name": feature,
                "n_anomaly": int(len(a)),
                "n_normal": int(len(b)),
                "n_anomaly_tested": int(len(a_s)),
                "n_normal_tested": int(len(b_s)),
                "u_statistic": u,
                "p_value": p,
                "rank_biserial": r,
                "direction": direction,
                "verdict": verdict,
            }
        )
    columns = [
        "feature_name",
        "n_anomaly",
        "n_normal",
        "n_anomaly_tested",
        "n_normal_tested",
        "u_statistic",
        "p_value",
        "rank_biserial",
        "direction",
        "verdict",
    ]
    return pd.DataFrame(rows, columns=columns)


RULE_LIFT_COLUMNS: tuple[str, ...] = (
    "rule_name",
    "feature_name",
    "operator",
    "threshold",
    "anomaly_hits",
    "anomaly_total",
    "normal_hits",
    "normal_total",
    "anomaly_hit_rate",
    "normal_hit_rate",
    "hit_rate_difference_pp",
    "lift",
    "odds_ratio",
    "mh_odds_ratio",
    "mh_segments",
)


def rule_lift_table(anomaly_rule_lift: pd.DataFrame) -> pd.DataFrame:
    """The rule-lift mart, typed and ordered by the hit-rate difference (largest first, ties by rule name),
    with Fisher's exact p (``scipy.stats.fisher_exact``, two-sided), its Benjamini-Hochberg q over the rules,
    and the 95 % CI of the sample odds ratio (``scipy.stats.contingency.odds_ratio``, kind 'sample', Woolf's
    log interval; conditional MLE when a cell is 0), all from the mart's record counts. Descriptive and pooled
    over segments: the within-segment answer is the Mantel-Haenszel odds ratio here and the customer-weighted
    CMH test of each rule in the inference."""
    from scipy.stats.contingency import odds_ratio as scipy_odds_ratio

    columns = list(RULE_LIFT_COLUMNS)
    frame = anomaly_rule_lift.copy()
    if "hit_rate_difference_pp" not in frame.columns and "lift_pp" in frame.columns:  # a pre-rename warehouse
        frame["hit_rate_difference_pp"] = frame["lift_pp"]
    require_mart_columns(frame, "anomaly_rule_lift", columns)
    frame = frame[columns]
    for column in ("rule_name", "feature_name", "operator"):
        frame[column] = text_column(frame, column, missing="")
    for column in columns[3:]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    fisher_p, ci_low, ci_high = [], [], []
    for row in frame.itertuples(index=False):
        counts = [row.anomaly_hits, row.anomaly_total, row.normal_hits, row.normal_total]
        if not all(np.isfinite(counts)) or row.anomaly_total <= 0 or row.normal_total <= 0:
            fisher_p.append(np.nan)
            ci_low.append(np.nan)
            ci_high.append(np.nan)
            continue
        a, b = int(row.anomaly_hits), int(row.anomaly_total - row.anomaly_hits)
        c, d = int(row.normal_hits), int(row.normal_total - row.normal_hits)
        table = np.array([[a, b], [c, d]])
        fisher_p.append(float(stats.fisher_exact(table, alternative="two-sided").pvalue))
        kind = "sample" if min(a, b, c, d) > 0 else "conditional"
        if (a + c) == 0 or (b + d) == 0:
            ci_low.append(np.nan)
            ci_high.append(np.nan)
            continue
        interval = scipy_odds_ratio(table, kind=kind).confidence_interval(0.95)
        ci_low.append(float(interval.low))
        ci_high.append(float(interval.high))
    frame["fisher_p"] = fisher_p
    p = frame["fisher_p"].to_numpy(dtype=float)
    q = np.full(len(p), np.nan)
    if np.isfinite(p).any():
        q[np.isfinite(p)] = stats.false_discovery_control(p[np.isfinite(p)], method="bh")
    frame["fisher_q"] = q
    frame["odds_ratio_ci_low"] = ci_low
    frame["odds_ratio_ci_high"] = ci_high
    frame["_lift"] = frame["hit_rate_difference_pp"].fillna(-np.inf)
    frame = frame.sort_values(["_lift", "rule_name"], ascending=[False, True], kind="mergesort")
    return frame.drop(columns="_lift").reset_index(drop=True)


# --------------------------------------------------------------------------------------------- value
@dataclass(frozen=True)
class Correlation:
    group: str
    n: int
    n_tested: int
    pearson: float
    pearson_p: float
    spearman: float
    spearman_p: float


def _correlation(x: np.ndarray, y: np.ndarray, group: str, config: ReportConfig) -> Correlation:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    idx = bounded_indices(len(x), config.stat_sample_size, config.random_state)
    xs, ys = x[idx], y[idx]
    if len(xs) < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return Correlation(group, int(len(x)), int(len(xs)), math.nan, math.nan, math.nan, math.nan)
    pr = stats.pearsonr(xs, ys)
    sr = stats.spearmanr(xs, ys)
    return Correlation(
        group,
        int(len(x)),
        int(len(xs)),
        float(pr.statistic),
        float(pr.pvalue),
        float(sr.statistic),
        float(sr.pvalue),
    )


def value_realization(fit: pd.DataFrame, config: ReportConfig) -> list[Correlation]:
    """Pearson and Spearman correlation of comprehensive_customer_score vs total_revenue: all, anomaly, normal."""
    x = numeric_column(fit, "comprehensive_customer_score")
    y = numeric_column(fit, "total_revenue")
    mask = anomaly_mask(fit)
    return [
        _correlation(x, y, "all", config),
        _correlation(x[mask], y[mask], "anomaly", config),
        _correlation(x[~mask], y[~mask], "normal", config),
    ]


# --------------------------------------------------------------------------------------------- crosstabs
def crosstab_association(anomaly_crosstabs: pd.DataFrame, config: ReportConfig) -> pd.DataFrame:
    """Chi-square test of anomaly vs dimension value for each dimension in the crosstab mart, with Cramer's V."""
    frame = anomaly_crosstabs.copy()
    frame["dimension"] = text_column(frame, "dimension")
    frame["dimension_value"] = text_column(frame, "dimension_value")
    for column in ("anomaly_count", "normal_count", "record_count", "anomaly_rate"):
        frame[column] = pd.to_numeric(frame.get(column), errors="coerce")
    rows = []
    for dimension in sorted(frame["dimension"].unique()):
        part = frame[frame["dimension"] == dimension].sort_values("dimension_value", kind="mergesort")
        table = part[["anomaly_count", "normal_count"]].fillna(0).to_numpy(dtype=float)
        table = table[table.sum(axis=1) > 0]
        chi2, p, dof, v = math.nan, math.nan, 0, math.nan
        if table.shape[0] >= 2 and (table.sum(axis=0) > 0).all():
            res = stats.chi2_contingency(table, correction=False)
            chi2, p, dof = float(res.statistic), float(res.pvalue), int(res.dof)
            v = math.sqrt(chi2 / table.sum()) if table.sum() else math.nan
        if math.isfinite(p) and p < config.alpha_large and v >= config.cramers_v_large:
            verdict = "association"
        elif math.isfinite(p) and p >= config.alpha_noise:
            verdict = "noise"
        elif math.isfinite(p):
            verdict = "weak"
        else:
            verdict = "insufficient data"
        rated = part.dropna(subset=["anomaly_rate"])
        highest = rated.sort_values(["anomaly_rate", "dimension_value"], ascending=[False, True]).head(1)
        rows.append(
            {
                "dimension": dimension,
                "values": int(len(part)),
                "chi2": chi2,
                "dof": dof,
                "p_value": p,
                "cramers_v": v,
                "verdict": verdict,
                "highest_rate_value": highest["dimension_value"].iloc[0] if len(highest) else None,
                "highest_rate": float(highest["anomaly_rate"].iloc[0]) if len(highest) else math.nan,
            }
        )
    columns = [
        "dimension",
        "values",
        "chi2",
        "dof",
        "p_value",
        "cramers_v",
        "verdict",
        "highest_rate_value",
        "highest_rate",
    ]
    return pd.DataFrame(rows, columns=columns)


def crosstab_table(anomaly_crosstabs: pd.DataFrame) -> pd.DataFrame:
    """The crosstab mart typed and ordered by dimension, then value."""
    columns = [
        "dimension",
        "dimension_value",
        "anomaly_count",
        "normal_count",
        "record_count",
        "anomaly_rate",
    ]
    frame = anomaly_crosstabs.copy()
    require_mart_columns(frame, "anomaly_crosstabs", columns)
    frame = frame[columns]
    frame["dimension"] = text_column(frame, "dimension")
    frame["dimension_value"] = text_column(frame, "dimension_value")
    for column in columns[2:]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.sort_values(["dimension", "dimension_value"], kind="mergesort").reset_index(drop=True)


# --------------------------------------------------------------------------------------------- anomalies
def top_anomalies(classification_anomalies: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` largest deviations (by ``anomaly_rank``, else by |deviation| then record id)."""
    columns = [
        "anomaly_rank",
        "customer_record_id",
        "customer_name",
        "profitability_segment",
        "retention_probability",
        "segment_avg_retention",
        "retention_deviation",
    ]
    frame = classification_anomalies.copy()
    require_mart_columns(frame, "classification_anomalies", columns)
    frame["_rank"] = pd.to_numeric(frame["anomaly_rank"], errors="coerce")
    frame["_abs"] = -np.abs(numeric_column(frame, "retention_deviation"))
    frame["_id"] = text_column(frame, "customer_record_id", missing="")
    frame = frame.sort_values(["_rank", "_abs", "_id"], kind="mergesort", na_position="last").head(n)
    out = frame[columns].reset_index(drop=True)
    for column in ("customer_record_id", "customer_name", "profitability_segment"):
        out[column] = text_column(out, column, missing="")
    for column in ("retention_probability", "segment_avg_retention", "retention_deviation", "anomaly_rank"):
        out[column] = pd.to_numeric(out[column], errors="coerce")
    return out


# --------------------------------------------------------------------------------------------- data quality
@dataclass(frozen=True)
class DataQualitySummary:
    reconciliation: pd.DataFrame
    issues_by_reason: pd.DataFrame
    total_issues: int
    rejected_rows: int


def data_quality_summary(
    input_row_reconciliation: pd.DataFrame | None,
    data_quality_issues: pd.DataFrame | None,
    dq_summary: pd.DataFrame | None = None,
) -> DataQualitySummary:
    """Reconciliation per source and issue counts by (source, severity, column, reason)."""
    rec_cols = ["source", "input_rows", "clean_rows", "rejected_rows", "is_reconciled"]
    rec = (input_row_reconciliation if input_row_reconciliation is not None else pd.DataFrame()).copy()
    for column in rec_cols:
        if column not in rec.columns:
            rec[column] = np.nan
    rec = rec[rec_cols]
    rec["source"] = text_column(rec, "source")
    for column in ("input_rows", "clean_rows", "rejected_rows"):
        rec[column] = pd.to_numeric(rec[column], errors="coerce").fillna(0).astype("int64")
    rec["is_reconciled"] = as_bool(rec["is_reconciled"]) if len(rec) else rec["is_reconciled"]
    rec = rec.sort_values("source", kind="mergesort").reset_index(drop=True)

    keys = ["source", "severity", "column_name", "reason"]
    if dq_summary is not None and {"reason", "issue_count"} <= set(dq_summary.columns):
        issues = dq_summary.copy()
        for column in keys:
            issues[column] = text_column(issues, column, missing="")
        issues["issue_count"] = (
            pd.to_numeric(issues["issue_count"], errors="coerce").fillna(0).astype("int64")
        )
        issues = issues[keys + ["issue_count"]]
    else:
        dq = (data_quality_issues if data_quality_issues is not None else pd.DataFrame()).copy()
        for column in keys:
            dq[column] = text_column(dq, column, missing="")
        if len(dq):
            issues = dq.groupby(keys, sort=True).size().reset_index(name="issue_count")
        else:
            issues = pd.DataFrame(
                {**{k: pd.Series(dtype=object) for k in keys}, "issue_count": pd.Series(dtype="int64")}
            )
    issues = issues.sort_values(
        ["issue_count", *keys], ascending=[False, True, True, True, True], kind="mergesort"
    ).reset_index(drop=True)
    return DataQualitySummary(
        reconciliation=rec,
        issues_by_reason=issues,
        total_issues=int(issues["issue_count"].sum()) if len(issues) else 0,
        rejected_rows=int(rec["rejected_rows"].sum()) if len(rec) else 0,
    )


def conflicting_customers(duplicate_customer_keys: pd.DataFrame | None, fit: pd.DataFrame) -> pd.DataFrame:
    """Customers with conflicting copies (``duplicate_customer_keys.is_conflicting``): keys, records, and
    how many of their records are anomalies. The within-segment tests weight their records so each counts
    once."""
    columns = ["customer_id", "conflicting_keys", "records", "anomaly_records", "min_retention", "max_retention"]
    if duplicate_customer_keys is None or not len(duplicate_customer_keys) or "customer_id" not in fit.columns:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "customer_id" else "int64") for c in columns})
    keys = duplicate_customer_keys[as_bool(duplicate_customer_keys["is_conflicting"])]
    ids = text_column(keys, "customer_id")
    per_key = keys.assign(customer_id=ids).groupby("customer_id", sort=True).size()
    records = fit.assign(
        customer_id=text_column(fit, "customer_id"),
        _anomaly=anomaly_mask(fit),
        _retention=numeric_column(fit, "retention_probability"),
    )
    records = records[records["customer_id"].isin(per_key.index)]
    agg = records.groupby("customer_id", sort=True).agg(
        records=("customer_id", "size"),
        anomaly_records=("_anomaly", "sum"),
        min_retention=("_retention", "min"),
        max_retention=("_retention", "max"),
    )
    out = agg.join(per_key.rename("conflicting_keys")).reset_index()
    out = out.sort_values(["records", "customer_id"], ascending=[False, True], kind="mergesort")
    return out[columns].reset_index(drop=True)
