"""An independent pandas implementation of segfit's definitions (the issue's "Definitions (exact)").

It reads the raw input CSVs itself and shares no code with the SQL or with python_analysis, so a test
that compares it with the marts can catch a wrong formula on either side.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

THRESHOLD = 0.15
QUARTERS = ["q1", "q2", "q3", "q4"]


def _text(series: pd.Series) -> pd.Series:
    stripped = series.astype("string").str.strip()
    return stripped.mask(stripped == "")


def _number(series: pd.Series) -> pd.Series:
    return pd.to_numeric(_text(series), errors="coerce").astype("float64")


def read_raw(path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.insert(0, "source_row_number", np.arange(1, len(frame) + 1))
    return frame


def clean_customers(raw: pd.DataFrame, *, allowed_segments=None) -> pd.DataFrame:
    out = pd.DataFrame({"source_row_number": raw["source_row_number"]})
    for col in ["customer_id", "subsidiary_id", "customer_name", "profitability_segment", "lifecycle_stage",
                "seasonal_preference"]:
        out[col] = _text(raw[col]) if col in raw else pd.Series(pd.NA, index=raw.index, dtype="string")
    rejected = out["customer_id"].isna() | out["profitability_segment"].isna()
    if allowed_segments:
        rejected |= ~out["profitability_segment"].isin(allowed_segments)
    retention = _number(raw["retention_probability"])
    out["retention_probability"] = retention
    rejected |= retention.isna() | (retention < 0) | (retention > 1)
    numbers = ["comprehensive_customer_score", "total_revenue", "net_profit", "avg_transactions_per_month",
               "transaction_value_volatility", "transaction_count", "q1_transactions", "q2_transactions",
               "q3_transactions", "q4_transactions", "customer_age_days"]
    for col in numbers:
        if col in raw:
            given = _text(raw[col])
            values = _number(raw[col])
            rejected |= given.notna() & values.isna()
            out[col] = values
        else:
            out[col] = np.nan
    if "segmentation_date" in raw:
        given = _text(raw["segmentation_date"])
        dates = pd.to_datetime(given, errors="coerce")
        rejected |= given.notna() & dates.isna()
        out["segmentation_date"] = dates
    else:
        out["segmentation_date"] = pd.NaT
    out["rejected"] = rejected
    return out


def apply_grain(clean: pd.DataFrame, grain: str) -> pd.DataFrame:
    if grain == "all":
        return clean.copy()
    ordered = clean.assign(
        _date=clean["segmentation_date"].fillna(pd.Timestamp("1900-01-01")),
        _sub=clean["subsidiary_id"].fillna(""),
    ).sort_values(["customer_id", "_date", "_sub", "source_row_number"], kind="mergesort")
    kept = ordered.groupby("customer_id", sort=False).tail(1)
    return kept.drop(columns=["_date", "_sub"]).sort_values("source_row_number")


def clean_transactions(raw: pd.DataFrame, valid_customer_ids: set[str], today: pd.Timestamp) -> pd.DataFrame:
    out = pd.DataFrame({"source_row_number": raw["source_row_number"]})
    out["transaction_id"] = _text(raw["transaction_id"])
    out["customer_id"] = _text(raw["customer_id"])
    given_date = _text(raw["transaction_date"])
    out["transaction_date"] = pd.to_datetime(given_date, errors="coerce")
    out["amount"] = _number(raw["amount"])
    out["profit"] = _number(raw["profit"]) if "profit" in raw else np.nan
    duplicate = out["transaction_id"].notna() & out.duplicated("transaction_id", keep="first")
    rejected = (
        out["transaction_id"].isna()
        | duplicate
        | out["customer_id"].isna()
        | ~out["customer_id"].isin(valid_customer_ids)
        | out["transaction_date"].isna()
        | (out["transaction_date"] > today + pd.Timedelta(days=1))
        | out["amount"].isna()
    )
    if "profit" in raw:
        rejected |= _text(raw["profit"]).notna() & out["profit"].isna()
    return out[~rejected]


def behaviour_from_transactions(records: pd.DataFrame, transactions: pd.DataFrame) -> pd.DataFrame:
    max_date = transactions["transaction_date"].max() if len(transactions) else pd.NaT
    recs = records[["source_row_number", "customer_id", "segmentation_date"]].copy()
    recs["as_of_date"] = recs["segmentation_date"].fillna(max_date)
    rows = []
    by_customer = {cid: grp for cid, grp in transactions.groupby("customer_id")}
    for rec in recs.itertuples(index=False):
        txns = by_customer.get(rec.customer_id)
        if txns is not None and not pd.isna(rec.as_of_date):
            txns = txns[txns["transaction_date"] <= rec.as_of_date]
        n = 0 if txns is None else len(txns)
        row = {"source_row_number": rec.source_row_number, "as_of_date": rec.as_of_date, "transaction_count": n}
        if n == 0:
            row.update(total_revenue=0.0, net_profit=np.nan, transaction_value_volatility=np.nan,
                       customer_age_days=np.nan, avg_transactions_per_month=np.nan, days_since_last=np.nan,
                       q1_transactions=0, q2_transactions=0, q3_transactions=0, q4_transactions=0)
        else:
            amounts = txns["amount"].to_numpy()
            mean = amounts.mean()
            row["total_revenue"] = amounts.sum()
            row["net_profit"] = txns["profit"].sum(min_count=1)
            row["transaction_value_volatility"] = (
                np.std(amounts, ddof=1) / mean if n >= 2 and mean != 0 else np.nan
            )
            quarters = txns["transaction_date"].dt.quarter
            for q in range(1, 5):
                row[f"q{q}_transactions"] = int((quarters == q).sum())
            first = txns["transaction_date"].min().normalize()
            last = txns["transaction_date"].max().normalize()
            as_of = pd.Timestamp(rec.as_of_date).normalize()
            row["customer_age_days"] = (as_of - first).days
            row["days_since_last"] = (as_of - last).days
            months = txns["transaction_date"].dt.to_period("M").nunique()
            row["avg_transactions_per_month"] = n / months
        rows.append(row)
    return pd.DataFrame(rows)


def features(frame: pd.DataFrame, *, derive_labels: bool, peak_share=0.30, mature_days=365,  # noqa: C901 - the independent pandas oracle mirrors the dbt model step by step
             at_risk_days=120) -> pd.DataFrame:
    f = frame.copy()
    counts = f[[f"{q}_transactions" for q in QUARTERS]].astype("float64")
    total = counts.sum(axis=1, min_count=4)
    shares = counts.div(total.where(total > 0), axis=0)
    for q in QUARTERS:
        f[f"{q}_share"] = shares[f"{q}_transactions"]
    share_values = shares.to_numpy()
    f["seasonality_std"] = np.where(total > 0, np.nanstd(np.nan_to_num(share_values), axis=1, ddof=0), np.nan)
    f["seasonality_imbalance"] = np.where(total > 0, shares.max(axis=1) - shares.min(axis=1), np.nan)

    def entropy(row):
        if not np.all(np.isfinite(row)):
            return np.nan
        return -sum(p * math.log(p) for p in row if p > 0) / math.log(4)

    f["seasonality_entropy_norm"] = [entropy(r) for r in share_values]
    mean_count = counts.mean(axis=1)
    f["seasonality_cv"] = (counts.std(axis=1, ddof=0) / mean_count.where(mean_count != 0))
    f["months_active"] = f["customer_age_days"] / 30
    f["expected_transactions"] = f["avg_transactions_per_month"] * f["months_active"]
    expected = f["expected_transactions"].where(f["expected_transactions"] != 0)
    f["txn_consistency_ratio"] = f["transaction_count"] / expected
    f["txn_consistency_error"] = (f["transaction_count"] - expected).abs() / expected
    f["quarterly_coverage_gap"] = f["transaction_count"] - total
    f["quarterly_coverage_gap_ratio"] = f["quarterly_coverage_gap"] / f["transaction_count"].where(
        f["transaction_count"] != 0
    )
    score = f["comprehensive_customer_score"]
    f["revenue_per_score"] = f["total_revenue"] / score.where(score != 0)

    def zscore(s):
        std = s.std(ddof=0)
        return (s - s.mean()) / (std if std and std > 0 else np.nan)

    f["value_mismatch_z"] = (zscore(f["total_revenue"]) - zscore(score)).abs()

    if derive_labels:
        def season(row):
            if not np.isfinite(row.get("q1_share", np.nan)):
                return None
            values = [row[f"{q}_share"] for q in QUARTERS]
            top = max(values)
            if top < peak_share:
                return "Balanced"
            return f"Q{values.index(top) + 1} Peak"

        def lifecycle(row):
            if row["transaction_count"] == 0:
                return "At Risk"
            if row.get("days_since_last", np.nan) > at_risk_days:
                return "At Risk"
            if pd.isna(row["customer_age_days"]):
                return None
            return "Mature" if row["customer_age_days"] >= mature_days else "Growth"

        f["seasonal_preference"] = f["seasonal_preference"].where(
            f["seasonal_preference"].notna(), f.apply(season, axis=1)
        )
        f["lifecycle_stage"] = f["lifecycle_stage"].where(f["lifecycle_stage"].notna(), f.apply(lifecycle, axis=1))
    return f


def flag(frame: pd.DataFrame, threshold=THRESHOLD, mode="absolute") -> pd.DataFrame:
    f = frame.copy()
    f["segment_avg_retention"] = f.groupby("profitability_segment")["retention_probability"].transform("mean")
    f["retention_deviation"] = f["retention_probability"] - f["segment_avg_retention"]
    deviation = f["retention_deviation"].abs()
    if mode == "relative":
        deviation = deviation / f["segment_avg_retention"].where(f["segment_avg_retention"] != 0)
    elif mode == "zscore":
        sd = f.groupby("profitability_segment")["retention_probability"].transform("std")
        f["segment_sd_retention"] = sd
        deviation = deviation / sd.where(sd != 0)
    f["is_classification_anomaly"] = (deviation.round(10) > threshold).fillna(False).astype(bool)
    f["deviation_direction"] = np.where(f["retention_deviation"].round(10) < 0, "below", "above")
    return f


def segment_fit(customers_csv, transactions_csv=None, *, grain="all", threshold=THRESHOLD, mode="absolute",
                today=None) -> pd.DataFrame:
    """The whole customer_segment_fit mart, computed independently; keyed by source_row_number."""
    today = today or pd.Timestamp.now().normalize()
    customers = clean_customers(read_raw(customers_csv))
    clean = customers[~customers["rejected"]]
    records = apply_grain(clean, grain)
    if transactions_csv is not None:
        txns = clean_transactions(read_raw(transactions_csv), set(clean["customer_id"]), today)
        behaviour = behaviour_from_transactions(records, txns)
        base = records.drop(columns=[c for c in behaviour.columns if c != "source_row_number" and c in records])
        frame = base.merge(behaviour, on="source_row_number", how="left")
    else:
        frame = records.assign(as_of_date=records["segmentation_date"], days_since_last=np.nan)
    return flag(features(frame, derive_labels=True), threshold, mode)
