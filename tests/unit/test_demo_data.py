"""Tests for the deterministic demo-data generator (fast, no dbt)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # allow `pytest` without an editable install
    sys.path.insert(0, str(REPO))

from python_analysis import demo_data as dd  # noqa: E402

SEEDS = REPO / "seeds"
TARGET = {"Premium": 0.80, "High Value": 0.70, "Growing": 0.60, "Standard": 0.50, "Basic": 0.40}


@pytest.fixture(scope="module")
def demo() -> dd.DemoData:
    return dd.generate_demo()


@pytest.fixture(scope="module")
def written(demo: dd.DemoData, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("seeds")
    return {p.name: p for p in dd.write_seeds(demo, out)}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _clean_customers(raw: pd.DataFrame) -> pd.DataFrame:
    """Apply the interface's rejection rules independently of the generator."""
    df = raw.copy()
    df["source_row_number"] = np.arange(1, len(df) + 1)
    df["retention"] = pd.to_numeric(df["retention_probability"].replace("", np.nan), errors="coerce")
    ok = (
        (df["customer_id"].str.strip() != "")
        & (df["profitability_segment"].str.strip() != "")
        & df["retention"].between(0, 1)
    )
    return df[ok].copy()


def _anomalies(df: pd.DataFrame) -> pd.Series:
    avg = df.groupby("profitability_segment")["retention"].transform("mean")
    return (df["retention"] - avg).abs().round(10) > 0.15  # the README's definition: rounded to 10 decimals


def _latest(df: pd.DataFrame) -> pd.DataFrame:
    d = df.copy()
    d["_date"] = pd.to_datetime(d["segmentation_date"].replace("", np.nan)).fillna(pd.Timestamp("1900-01-01"))
    d = d.sort_values(["customer_id", "_date", "subsidiary_id", "source_row_number"])
    return d.groupby("customer_id", sort=False).tail(1)


def _clean_transactions(raw: pd.DataFrame, customer_ids: set[str]) -> pd.DataFrame:
    t = raw.copy()
    t["amount_num"] = pd.to_numeric(t["amount"], errors="coerce")
    t = t[t["amount_num"].notna() & t["customer_id"].isin(customer_ids)]
    t = t[~t["transaction_id"].duplicated(keep="first")]
    return pd.DataFrame(
        {
            "customer_id": t["customer_id"],
            "date": pd.to_datetime(t["transaction_date"]),
            "amount": t["amount_num"],
            "profit": pd.to_numeric(t["profit"]),
        }
    )


# --------------------------------------------------------------------------------------------------------


def test_deterministic_and_matches_committed_seeds(demo: dd.DemoData, written: dict[str, Path]) -> None:
    again = dd.generate_demo()
    for name in ("customers", "customers_precomputed", "transactions", "planted", "bad_rows"):
        pd.testing.assert_frame_equal(getattr(demo, name), getattr(again, name))
    other = dd.generate_demo(seed=1)
    assert not other.customers.equals(demo.customers)
    for name, path in written.items():
        committed = SEEDS / name
        assert committed.exists(), f"{committed} missing: run python -m python_analysis.demo_data"
        assert path.read_bytes() == committed.read_bytes(), f"{name} differs from the committed seed"
        assert b"\r\n" not in path.read_bytes()


def test_columns(written: dict[str, Path]) -> None:
    cust = _read(written[dd.CUSTOMERS_FILE])
    pre = _read(written[dd.CUSTOMERS_PRECOMPUTED_FILE])
    txn = _read(written[dd.TRANSACTIONS_FILE])
    assert list(cust.columns) == list(dd.CUSTOMER_COLUMNS)
    assert list(pre.columns) == list(dd.CUSTOMER_COLUMNS) + list(dd.PRECOMPUTED_EXTRA_COLUMNS)
    assert list(txn.columns) == list(dd.TRANSACTION_COLUMNS)
    pd.testing.assert_frame_equal(pre[list(dd.CUSTOMER_COLUMNS)], cust)
    assert set(pre["lifecycle_stage"]) <= {"Mature", "Growth", "At Risk"}
    assert set(pre["seasonal_preference"]) <= {"Q1 Peak", "Q2 Peak", "Q3 Peak", "Q4 Peak", "Balanced"}
    assert (cust["customer_name"] == dd.XSS_NAME).sum() >= 1
    assert cust["customer_id"].str.fullmatch(r"(C\d{6})?").all()
    assert txn["transaction_date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert cust["segmentation_date"].str.fullmatch(r"(\d{4}-\d{2}-\d{2})?").all()
    score = pd.to_numeric(cust["comprehensive_customer_score"])
    assert score.between(0, 100).all() and (score == 0).sum() >= 2


def test_sizes_and_shape(demo: dd.DemoData, written: dict[str, Path]) -> None:
    cust = _read(written[dd.CUSTOMERS_FILE])
    txn = _read(written[dd.TRANSACTIONS_FILE])
    assert 1900 <= len(cust) <= 2100
    assert 1700 <= cust["customer_id"].nunique() <= 1900
    assert 45_000 <= len(txn) <= 55_000
    dates = pd.to_datetime(txn["transaction_date"])
    assert dates.min() == pd.Timestamp("2023-01-01") and dates.max() == pd.Timestamp("2025-06-30")
    assert (dates.max() - dates.min()).days >= 730
    clean = _clean_customers(cust)
    assert (clean["segmentation_date"] == "").sum() >= 3
    blank_ids = clean.loc[clean["segmentation_date"] == "", "customer_id"]
    assert (clean["customer_id"].isin(blank_ids).groupby(clean["customer_id"]).sum() <= 1).all()
    per_date = clean.groupby("customer_id")["segmentation_date"].agg(set)
    assert (per_date.map(lambda s: {"2024-12-31", "2025-06-30"} <= s)).sum() >= 20
    subs = clean[clean["segmentation_date"] == "2025-06-30"].groupby("customer_id")["subsidiary_id"].nunique()
    assert (subs >= 2).sum() >= 20
    keys = clean.groupby(["customer_id", "subsidiary_id", "segmentation_date"]).size()
    assert 2 <= (keys > 1).sum() <= 3
    with_txn = set(txn["customer_id"])
    assert 1 <= (~clean["customer_id"].drop_duplicates().isin(with_txn)).sum() <= 10
    # transactions after an older snapshot's date exist for customers with an older snapshot
    older = clean.loc[clean["segmentation_date"] == "2024-12-31", "customer_id"]
    later = txn[txn["customer_id"].isin(older) & (txn["transaction_date"] > "2024-12-31")]
    assert later["customer_id"].nunique() >= 0.9 * older.nunique()


def test_planted_truth_exact_in_both_grains(demo: dd.DemoData, written: dict[str, Path]) -> None:
    clean = _clean_customers(_read(written[dd.CUSTOMERS_FILE]))
    planted = demo.planted.set_index("source_row_number")
    assert sorted(clean["source_row_number"]) == sorted(planted.index)

    all_anom = pd.Series(_anomalies(clean).to_numpy(), index=clean["source_row_number"])
    assert all_anom.sort_index().equals(planted["is_planted_anomaly"].sort_index().rename(None))

    latest = _latest(clean)
    assert set(latest["source_row_number"]) == set(planted.index[planted["kept_in_latest"]])
    latest_anom = pd.Series(_anomalies(latest).to_numpy(), index=latest["source_row_number"]).sort_index()
    expected = planted.loc[planted["kept_in_latest"], "is_planted_anomaly"].sort_index().rename(None)
    assert latest_anom.equals(expected)

    assert planted.loc[planted["is_planted_anomaly"], "kept_in_latest"].all()
    for grain in (clean, latest):
        means = grain.groupby("profitability_segment")["retention"].mean()
        for seg, m in TARGET.items():
            assert means[seg] == pytest.approx(m, abs=1e-9)
    rate = planted["is_planted_anomaly"].mean()
    assert 0.04 <= rate <= 0.10
    assert (planted.groupby("profitability_segment")["is_planted_anomaly"].sum() >= 4).all()


def test_boundary_pairs(demo: dd.DemoData) -> None:
    p = demo.planted
    dev = (p["retention_probability"] - p["profitability_segment"].map(TARGET)).abs().round(4)
    b = p[p["is_boundary"]]
    inside = b[dev[b.index] == 0.149]
    exact = b[dev[b.index] == 0.15]
    outside = b[dev[b.index] == 0.151]
    assert len(inside) + len(exact) + len(outside) == len(b)
    assert len(inside) >= 6 and len(inside) % 2 == 0 and not inside["is_planted_anomaly"].any()
    assert len(exact) == 2 and not exact["is_planted_anomaly"].any()  # strict: exactly 0.15 is not an anomaly
    assert len(outside) >= 6 and len(outside) % 2 == 0 and outside["is_planted_anomaly"].all()
    assert b["kept_in_latest"].all()
    for grp in (inside, exact, outside):  # symmetric pairs within each segment
        signed = grp["retention_probability"] - grp["profitability_segment"].map(TARGET)
        assert signed.groupby(grp["profitability_segment"]).sum().abs().max() < 1e-9


def test_the_demo_tells_mean_from_median_and_guards_the_strict_threshold(written: dict[str, Path]) -> None:
    """In both grains of the written seeds: one segment's median is far enough from its mean that averaging by
    the median would flag other records, and records sit at exactly 0.15 from their segment mean (after the
    10-decimal rounding), so a `>=` would flag them. The oracle tests rely on both to catch either change."""
    clean = _clean_customers(_read(written[dd.CUSTOMERS_FILE]))
    for grain in (clean, _latest(clean)):
        by_segment = grain.groupby("profitability_segment")["retention"]
        mean, median = by_segment.transform("mean"), by_segment.transform("median")
        assert (by_segment.median() - by_segment.mean()).abs().max() >= 0.02
        deviation = (grain["retention"] - mean).abs().round(10)
        by_mean = deviation > dd.ANOMALY_THRESHOLD
        by_median = (grain["retention"] - median).abs().round(10) > dd.ANOMALY_THRESHOLD
        assert (by_mean != by_median).sum() >= 5
        at_threshold = deviation == dd.ANOMALY_THRESHOLD
        assert at_threshold.sum() == 2 and not by_mean[at_threshold].any()
        assert ((deviation >= dd.ANOMALY_THRESHOLD) != by_mean).sum() == 2


def test_q4_share_exceeds_q2(written: dict[str, Path]) -> None:
    txn = _read(written[dd.TRANSACTIONS_FILE])
    share = pd.to_datetime(txn["transaction_date"]).dt.quarter.value_counts(normalize=True)
    assert share[4] > share[2]
    assert share[4] == share.max() and share[2] == share.min()


def test_bad_rows(demo: dd.DemoData, written: dict[str, Path]) -> None:
    cust = _read(written[dd.CUSTOMERS_FILE])
    pre = _read(written[dd.CUSTOMERS_PRECOMPUTED_FILE])
    txn = _read(written[dd.TRANSACTIONS_FILE])
    bad = demo.bad_rows

    def rows(file: str) -> list[int]:
        return sorted(bad.loc[bad["file"] == file, "source_row_number"].tolist())

    # customers: blank id, 45, blank retention -- and nothing else is rejectable
    retention = pd.to_numeric(cust["retention_probability"].replace("", np.nan), errors="coerce")
    rejected = (cust["customer_id"] == "") | ~retention.between(0, 1)
    assert rows(dd.CUSTOMERS_FILE) == sorted((np.flatnonzero(rejected) + 1).tolist())
    assert rows(dd.CUSTOMERS_PRECOMPUTED_FILE) == rows(dd.CUSTOMERS_FILE)
    assert (cust["customer_id"] == "").sum() == 1
    assert (cust["retention_probability"] == "45").sum() == 1
    assert ((cust["retention_probability"] == "") & (cust["customer_id"] != "")).sum() == 1
    assert (pre["retention_probability"] == "45").sum() == 1

    # transactions: 3 orphans, 2 later duplicate ids, 1 'n/a'
    known = set(cust["customer_id"]) - {""}
    orphan = ~txn["customer_id"].isin(known)
    dup = txn["transaction_id"].duplicated(keep="first")
    na = txn["amount"] == "n/a"
    assert orphan.sum() == 3 and dup.sum() == 2 and na.sum() == 1
    assert txn["transaction_id"].duplicated(keep=False).sum() == 4
    assert rows(dd.TRANSACTIONS_FILE) == sorted((np.flatnonzero(orphan | dup | na) + 1).tolist())
    amounts = pd.to_numeric(txn["amount"], errors="coerce")
    assert amounts.isna().sum() == 1
    assert 1 <= (amounts < 0).sum() <= 0.02 * len(txn)
    reasons = bad.set_index(["file", "source_row_number"])["reason"]
    for r in np.flatnonzero(dup) + 1:
        assert reasons[(dd.TRANSACTIONS_FILE, r)].startswith("duplicate transaction_id")


def test_precomputed_matches_transactions(demo: dd.DemoData, written: dict[str, Path]) -> None:
    pre = _read(written[dd.CUSTOMERS_PRECOMPUTED_FILE])
    pre["source_row_number"] = np.arange(1, len(pre) + 1)
    txn = _clean_transactions(_read(written[dd.TRANSACTIONS_FILE]), set(pre["customer_id"]) - {""})
    as_of = pd.to_datetime(pre["segmentation_date"].replace("", np.nan)).fillna(txn["date"].max())
    recs = pd.DataFrame({"rec": pre["source_row_number"], "customer_id": pre["customer_id"], "as_of": as_of})
    m = recs.merge(txn, on="customer_id")
    m = m[m["date"] <= m["as_of"]]
    g = m.groupby("rec")
    exp = pd.DataFrame(
        {
            "transaction_count": g.size(),
            "total_revenue": g["amount"].sum(),
            "net_profit": g["profit"].sum(),
            "vol": g["amount"].std() / g["amount"].mean(),
            "age": (g["as_of"].first() - g["date"].min()).dt.days,
            "per_month": g.size() / g["date"].agg(lambda s: s.dt.to_period("M").nunique()),
        }
    )
    for q in range(1, 5):
        exp[f"q{q}"] = m[m["date"].dt.quarter == q].groupby("rec").size()
    exp = exp.reindex(pre["source_row_number"])
    exp[["transaction_count", "total_revenue", "net_profit", "q1", "q2", "q3", "q4"]] = exp[
        ["transaction_count", "total_revenue", "net_profit", "q1", "q2", "q3", "q4"]
    ].fillna(0)
    got = pre.set_index("source_row_number")

    def num(col: str) -> pd.Series:
        return pd.to_numeric(got[col].replace("", np.nan))

    assert (num("transaction_count") == exp["transaction_count"]).all()
    assert np.allclose(num("total_revenue"), exp["total_revenue"], atol=0.006)
    assert np.allclose(num("net_profit"), exp["net_profit"], atol=0.006)
    assert np.allclose(num("transaction_value_volatility"), exp["vol"], atol=1.5e-4, equal_nan=True)
    assert np.allclose(num("customer_age_days"), exp["age"], equal_nan=True)
    assert np.allclose(
        num("avg_transactions_per_month").where(exp["transaction_count"] > 0),
        exp["per_month"],
        atol=1.5e-4,
        equal_nan=True,
    )
    zero = exp["transaction_count"] == 0
    assert zero.sum() >= 4 and (num("total_revenue")[zero] == 0).all()
    assert (
        num("transaction_value_volatility")[zero].isna().all() and num("customer_age_days")[zero].isna().all()
    )

    quarters_ok = pd.concat([num(f"q{q}_transactions") == exp[f"q{q}"] for q in range(1, 5)], axis=1).all(
        axis=1
    )
    qsum = sum(num(f"q{q}_transactions") for q in range(1, 5))
    perturbed = set(demo.planted.loc[demo.planted["quarters_perturbed"], "source_row_number"])
    assert 0.01 * len(pre) <= len(perturbed) <= 0.03 * len(pre)
    mismatch = set(quarters_ok.index[~quarters_ok])
    assert mismatch == perturbed
    assert set(qsum.index[qsum != num("transaction_count")]) == perturbed


def test_anomalies_behave_differently_and_segment_follows_revenue(
    demo: dd.DemoData, written: dict[str, Path]
) -> None:
    pre = _read(written[dd.CUSTOMERS_PRECOMPUTED_FILE])
    p = demo.planted.set_index("source_row_number")
    pre.index = np.arange(1, len(pre) + 1)
    pre = pre.loc[p.index]
    vol = pd.to_numeric(pre["transaction_value_volatility"].replace("", np.nan))
    is_anom = p["is_planted_anomaly"]
    assert vol[is_anom].median() > 2 * vol[~is_anom].median()
    rev = pd.to_numeric(pre["total_revenue"])[p["kept_in_latest"]]
    med = rev.groupby(pre["profitability_segment"][p["kept_in_latest"]]).median()
    assert med["Basic"] < med["Standard"] < med["Growing"] < med["High Value"] < med["Premium"]


def test_write_scaled_parquet_small(tmp_path: Path) -> None:
    paths = dd.write_scaled_parquet(500, 12_345, tmp_path, seed=7, chunk_transactions=3_000)
    cust = pq.read_table(paths["customers"]).to_pandas()
    txn = pq.read_table(paths["transactions"]).to_pandas()
    assert list(cust.columns) == list(dd.CUSTOMER_COLUMNS)
    assert list(txn.columns) == list(dd.TRANSACTION_COLUMNS)
    assert len(cust) == 500 and cust["customer_id"].is_unique
    assert len(txn) == 12_345 and txn["transaction_id"].is_unique
    assert set(txn["customer_id"]) <= set(cust["customer_id"])
    assert cust["retention_probability"].between(0, 1).all()
    assert set(cust["profitability_segment"]) == set(dd.SEGMENTS)
    dates = pd.to_datetime(txn["transaction_date"])
    assert dates.min() >= pd.Timestamp("2023-01-01") and dates.max() <= pd.Timestamp("2025-06-30")
    again = dd.write_scaled_parquet(500, 12_345, tmp_path / "again", seed=7, chunk_transactions=3_000)
    assert pq.read_table(again["transactions"]).equals(pq.read_table(paths["transactions"]))


def test_write_scaled_parquet_time_order(tmp_path: Path) -> None:
    by_customer = dd.write_scaled_parquet(300, 6_000, tmp_path / "c", seed=7, chunk_transactions=2_000)
    by_time = dd.write_scaled_parquet(300, 6_000, tmp_path / "t", seed=7, chunk_transactions=2_000, order="time")
    c = pq.read_table(by_customer["transactions"]).to_pandas()
    t = pq.read_table(by_time["transactions"]).to_pandas()
    assert pq.read_table(by_time["customers"]).equals(pq.read_table(by_customer["customers"]))
    assert list(t.columns) == list(dd.TRANSACTION_COLUMNS)
    # the same transactions, only the order and the ids differ
    values = ["customer_id", "transaction_date", "amount", "profit"]
    assert c[values].sort_values(values).reset_index(drop=True).equals(
        t[values].sort_values(values).reset_index(drop=True))
    # a log: dates never go back, ids increase in file order, customers interleaved
    assert pd.to_datetime(t["transaction_date"]).is_monotonic_increasing
    assert t["transaction_id"].is_unique and t["transaction_id"].is_monotonic_increasing
    runs_time = int((t["customer_id"] != t["customer_id"].shift()).sum())
    runs_customer = int((c["customer_id"] != c["customer_id"].shift()).sum())
    assert runs_customer <= 300 < 10 * 300 < runs_time
    again = dd.write_scaled_parquet(300, 6_000, tmp_path / "t2", seed=7, chunk_transactions=2_000, order="time")
    assert pq.read_table(again["transactions"]).equals(pq.read_table(by_time["transactions"]))
    with pytest.raises(ValueError, match="order"):
        dd.write_scaled_parquet(10, 10, tmp_path / "x", order="random")
