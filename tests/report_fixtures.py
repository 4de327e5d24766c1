"""Small synthetic mart frames with known answers for the report tests (no warehouse needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SCRIPT_NAME = "<script>alert(1)</script>"
BOLD_SEGMENT = "<b>Gold</b>"
AMP_STAGE = "Growth & Expansion"

FEATURES = (
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


def make_fit(n: int = 400, seed: int = 0, threshold: float = 0.15) -> pd.DataFrame:
    """customer_segment_fit: 3 segments; anomalies are Q4-heavy and volatile, so those features differ."""
    rng = np.random.default_rng(seed)
    segments = np.array(["High Value", "Medium", BOLD_SEGMENT])
    seg = segments[rng.integers(0, 3, n)]
    base = {"High Value": 0.8, "Medium": 0.55, BOLD_SEGMENT: 0.3}
    retention = np.array([base[s] for s in seg]) + rng.normal(0, 0.05, n)
    flip = rng.random(n) < 0.15
    retention = np.where(flip, retention + rng.choice([-0.35, 0.35], n), retention)
    retention = np.clip(retention, 0.0, 1.0)
    revenue_base = {"High Value": 50000.0, "Medium": 12000.0, BOLD_SEGMENT: 2000.0}
    total_revenue = np.array([revenue_base[s] for s in seg]) * rng.lognormal(0, 0.3, n)
    txn = rng.poisson(40, n) + 1
    months = rng.integers(6, 36, n).astype(float)
    volatility = np.where(flip, rng.normal(2.0, 0.3, n), rng.normal(0.8, 0.3, n)).clip(0.01)
    q = rng.dirichlet([5, 5, 5, 5], n)
    q4_heavy = rng.dirichlet([1, 1, 1, 8], n)
    shares = np.where(flip[:, None], q4_heavy, q)
    qtx = np.round(shares * txn[:, None]).astype(int)
    shares = qtx / np.maximum(qtx.sum(axis=1, keepdims=True), 1)
    score = total_revenue / 1000 + rng.normal(0, 5, n)
    frame = pd.DataFrame(
        {
            "customer_record_id": [f"R{i:05d}" for i in range(n)],
            "customer_id": [f"C{i // 2:05d}" for i in range(n)],
            "subsidiary_id": ["S1" if i % 2 == 0 else "S2" for i in range(n)],
            "customer_name": [f"Customer {i}" for i in range(n)],
            "segmentation_date": pd.Timestamp("2024-12-31"),
            "as_of_date": pd.Timestamp("2024-12-31"),
            "source_row_number": np.arange(1, n + 1),
            "profitability_segment": seg,
            "lifecycle_stage": rng.choice(["New", AMP_STAGE, "Mature"], n),
            "lifecycle_stage_source": "given",
            "seasonal_preference": rng.choice(["Q4", "Even"], n),
            "seasonal_preference_source": "derived",
            "retention_probability": retention,
            "comprehensive_customer_score": score,
            "behaviour_source": "precomputed",
            "total_revenue": total_revenue,
            "net_profit": total_revenue * 0.2,
            "transaction_count": txn,
            "avg_transactions_per_month": txn / months,
            "transaction_value_volatility": volatility,
            "q1_transactions": qtx[:, 0],
            "q2_transactions": qtx[:, 1],
            "q3_transactions": qtx[:, 2],
            "q4_transactions": qtx[:, 3],
            "customer_age_days": (months * 30).astype(int),
            "q1_share": shares[:, 0],
            "q2_share": shares[:, 1],
            "q3_share": shares[:, 2],
            "q4_share": shares[:, 3],
        }
    )
    frame["seasonality_std"] = shares.std(axis=1)
    frame["seasonality_imbalance"] = shares.max(axis=1) - shares.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.nansum(np.where(shares > 0, shares * np.log(shares), 0.0), axis=1) / np.log(4)
    frame["seasonality_entropy_norm"] = ent
    frame["seasonality_cv"] = shares.std(axis=1) / 0.25
    frame["months_active"] = months
    frame["expected_transactions"] = frame["avg_transactions_per_month"] * months
    frame["txn_consistency_ratio"] = frame["transaction_count"] / frame["expected_transactions"]
    frame["txn_consistency_error"] = np.where(flip, rng.normal(0.5, 0.1, n), rng.normal(0.1, 0.05, n)).clip(0)
    frame["quarterly_coverage_gap"] = (qtx == 0).sum(axis=1)
    frame["quarterly_coverage_gap_ratio"] = frame["quarterly_coverage_gap"] / 4
    frame["revenue_per_score"] = total_revenue / np.maximum(score, 1)
    frame["value_mismatch_z"] = (frame["revenue_per_score"] - frame["revenue_per_score"].mean()) / frame[
        "revenue_per_score"
    ].std()
    avg = frame.groupby("profitability_segment")["retention_probability"].transform("mean")
    frame["segment_record_count"] = frame.groupby("profitability_segment")["customer_record_id"].transform(
        "size"
    )
    frame["segment_avg_retention"] = avg
    frame["retention_deviation"] = frame["retention_probability"] - avg
    frame["abs_retention_deviation"] = frame["retention_deviation"].abs()
    frame["deviation_direction"] = np.where(frame["retention_deviation"] >= 0, "above", "below")
    frame["anomaly_threshold"] = threshold
    frame["anomaly_threshold_mode"] = "absolute"
    frame["is_classification_anomaly"] = frame["abs_retention_deviation"] > threshold
    # the largest deviation (top of the anomaly table) carries a hostile name
    frame.loc[frame["abs_retention_deviation"].idxmax(), "customer_name"] = SCRIPT_NAME
    return frame


def anomalies_of(fit: pd.DataFrame) -> pd.DataFrame:
    anomalies = fit[fit["is_classification_anomaly"]].copy()
    anomalies = anomalies.sort_values(
        ["abs_retention_deviation", "customer_record_id"], ascending=[False, True]
    )
    anomalies["anomaly_rank"] = np.arange(1, len(anomalies) + 1)
    return anomalies.reset_index(drop=True)


def segment_summary_of(fit: pd.DataFrame) -> pd.DataFrame:
    total = int(fit["is_classification_anomaly"].sum())
    rows = []
    for seg, part in fit.groupby("profitability_segment", sort=True):
        anom = part["is_classification_anomaly"]
        rows.append(
            {
                "profitability_segment": seg,
                "record_count": len(part),
                "distinct_customers": part["customer_id"].nunique(),
                "avg_retention": part["retention_probability"].mean(),
                "anomaly_count": int(anom.sum()),
                "above_count": int((anom & (part["deviation_direction"] == "above")).sum()),
                "below_count": int((anom & (part["deviation_direction"] == "below")).sum()),
                "anomaly_rate": anom.mean(),
                "anomaly_share": anom.sum() / total if total else None,
            }
        )
    return pd.DataFrame(rows)


def feature_comparison_of(fit: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for feature in FEATURES:
        for group, sel in (
            ("anomaly", fit["is_classification_anomaly"]),
            ("normal", ~fit["is_classification_anomaly"]),
        ):
            v = pd.to_numeric(fit.loc[sel, feature], errors="coerce").dropna()
            rows.append(
                {
                    "feature_name": feature,
                    "anomaly_group": group,
                    "n": len(v),
                    "mean_value": v.mean() if len(v) else None,
                    "median_value": v.median() if len(v) else None,
                }
            )
    return pd.DataFrame(rows)


def seasonal_distribution_of(fit: pd.DataFrame) -> pd.DataFrame:
    rows = []
    groups = {
        "anomaly": fit["is_classification_anomaly"],
        "normal": ~fit["is_classification_anomaly"],
        "all": pd.Series(True, index=fit.index),
    }
    for level, segs in (("segment", sorted(fit["profitability_segment"].unique())), ("overall", [None])):
        for seg in segs:
            seg_sel = (
                fit["profitability_segment"] == seg if seg is not None else pd.Series(True, index=fit.index)
            )
            for group, gsel in groups.items():
                part = fit[seg_sel & gsel]
                row = {
                    "seasonal_distribution_id": f"{level}|{seg}|{group}",
                    "grouping_level": level,
                    "profitability_segment": seg,
                    "anomaly_group": group,
                    "record_count": len(part),
                    "records_with_quarters": len(part),
                }
                for q in range(1, 5):
                    row[f"q{q}_share_mean"] = part[f"q{q}_share"].mean() if len(part) else None
                rows.append(row)
    return pd.DataFrame(rows)


def crosstabs_of(fit: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for dim in ("seasonal_preference", "lifecycle_stage", "profitability_segment"):
        values = fit[dim].fillna("(missing)")
        for value in sorted(values.unique()):
            part = fit[values == value]
            a = int(part["is_classification_anomaly"].sum())
            rows.append(
                {
                    "dimension": dim,
                    "dimension_value": value,
                    "anomaly_count": a,
                    "normal_count": len(part) - a,
                    "record_count": len(part),
                    "anomaly_rate": a / len(part),
                }
            )
    return pd.DataFrame(rows)


def rule_lift_of(fit: pd.DataFrame) -> pd.DataFrame:
    rows = []
    anom = fit["is_classification_anomaly"]
    for name, feature, thr in (
        ("high_volatility", "transaction_value_volatility", 1.5),
        ("q4_heavy", "q4_share", 0.4),
        ("low_txn", "transaction_count", 1000),
    ):
        hits = fit[feature] > thr
        ah, nh = int((hits & anom).sum()), int((hits & ~anom).sum())
        at, nt = int(anom.sum()), int((~anom).sum())
        rows.append(
            {
                "rule_name": name,
                "feature_name": feature,
                "operator": ">",
                "threshold": thr,
                "anomaly_hits": ah,
                "anomaly_total": at,
                "normal_hits": nh,
                "normal_total": nt,
                "anomaly_hit_rate": ah / at if at else None,
                "normal_hit_rate": nh / nt if nt else None,
                "hit_rate_difference_pp": ((ah / at if at else 0) - (nh / nt if nt else 0)) * 100,
                "lift": (ah / at) / (nh / nt) if at and nt and nh else None,
                "odds_ratio": ah * (nt - nh) / ((at - ah) * nh) if (at - ah) and nh else None,
                **_mantel_haenszel(fit, hits, anom),
            }
        )
    return pd.DataFrame(rows)


def _mantel_haenszel(fit: pd.DataFrame, hits: pd.Series, anom: pd.Series) -> dict[str, object]:
    """The within-segment (Mantel-Haenszel) odds ratio of a rule, by statsmodels, over the segments whose 2x2
    table has both classes and both rule outcomes (as the mart's contract describes)."""
    from statsmodels.stats.contingency_tables import StratifiedTable

    tables = []
    for _, part in fit.groupby("profitability_segment", sort=True):
        h, a = hits.loc[part.index], anom.loc[part.index]
        table = np.array([[int((h & a).sum()), int((~h & a).sum())], [int((h & ~a).sum()), int((~h & ~a).sum())]])
        if (table.sum(axis=0) > 0).all() and (table.sum(axis=1) > 0).all():
            tables.append(table)
    if not tables:
        return {"mh_odds_ratio": None, "mh_segments": 0}
    with np.errstate(divide="ignore", invalid="ignore"):  # no discordant pairs: an infinite OR, reported as null
        value = float(StratifiedTable(tables).oddsratio_pooled)
    return {"mh_odds_ratio": value if value is None or np.isfinite(value) else None, "mh_segments": len(tables)}


def dq_issues() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "issue_id": ["i1", "i2", "i3"],
            "source": ["customers", "customers", "transactions"],
            "source_row_number": [5, 9, 12],
            "row_key": ["C9", "C10", "T12"],
            "column_name": ["retention_probability", "retention_probability", "amount"],
            "value": ["45", "", "1 & 2"],
            "reason": ["out of range [0,1]", "null", "unparseable A&B"],
            "severity": ["rejected", "rejected", "warning"],
        }
    )


def reconciliation() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": ["customers", "transactions"],
            "input_rows": [402, 100],
            "clean_rows": [400, 100],
            "rejected_rows": [2, 0],
            "is_reconciled": [True, True],
        }
    )


def make_marts(n: int = 400, seed: int = 0, threshold: float = 0.15) -> dict[str, pd.DataFrame]:
    """Every mart the report reads, consistent with one synthetic customer_segment_fit."""
    fit = make_fit(n, seed, threshold)
    return {
        "customer_segment_fit": fit,
        "classification_anomalies": anomalies_of(fit),
        "segment_retention_summary": segment_summary_of(fit),
        "anomaly_feature_comparison": feature_comparison_of(fit),
        "seasonal_distribution": seasonal_distribution_of(fit),
        "anomaly_crosstabs": crosstabs_of(fit),
        "anomaly_rule_lift": rule_lift_of(fit),
        "data_quality_issues": dq_issues(),
        "input_row_reconciliation": reconciliation(),
    }


def blobs(n_per: int = 30, seed: int = 0) -> pd.DataFrame:
    """Anomaly records forming two well-separated blobs in every clustering feature."""
    rng = np.random.default_rng(seed)
    rows = []
    for center in (0.0, 10.0):
        for i in range(n_per):
            rows.append(
                {
                    "customer_record_id": f"B{int(center)}-{i:03d}",
                    "txn_consistency_error": center + rng.normal(0, 0.1),
                    "transaction_value_volatility": center + rng.normal(0, 0.1),
                    "seasonality_std": center + rng.normal(0, 0.1),
                    "seasonality_imbalance": center + rng.normal(0, 0.1),
                    "seasonality_entropy_norm": center + rng.normal(0, 0.1),
                    "avg_transactions_per_month": center + rng.normal(0, 0.1),
                    "transaction_count": center + rng.normal(0, 0.1),
                    "total_revenue": center + rng.normal(0, 0.1),
                    "profitability_segment": "A" if center == 0 else "B",
                    "lifecycle_stage": "New",
                    "seasonal_preference": "Q4",
                }
            )
    return pd.DataFrame(rows)


def threshold_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Segment is exactly total_revenue > 1000; other behaviour is noise."""
    rng = np.random.default_rng(seed)
    revenue = rng.uniform(0, 2000, n)
    frame = pd.DataFrame(
        {
            "customer_record_id": [f"T{i}" for i in range(n)],
            "total_revenue": revenue,
            "transaction_count": rng.integers(1, 50, n),
            "transaction_value_volatility": rng.normal(1, 0.2, n),
            "profitability_segment": np.where(revenue > 1000, "High", "Low"),
        }
    )
    return frame
