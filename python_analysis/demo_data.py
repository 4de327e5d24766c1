"""Deterministic demo data for segfit: the seed CSVs and scaled Parquet files for benchmarks.

Everything is derived from one ``numpy.random.Generator`` built from the seed, so the same seed gives
byte-identical CSVs. Nothing here touches global state.

The demo plants classification anomalies whose truth is exact in both customer grains (``all`` and
``latest``): each segment's clean retention values come in symmetric pairs ``(m + e, m - e)`` around the
segment's target mean ``m`` (plus at most one value equal to ``m`` per group), separately for the records
that grain ``latest`` keeps and the records it drops, so both grains have segment mean exactly ``m``.
Two mean-preserving edits follow (``_make_segment_lopsided``, ``_plant_exact_threshold_pair``): one segment's
normal records are made lopsided (median well above the mean), and one segment gets a pair of records at
exactly the threshold (0.15) from its mean, which the strict ``>`` does not flag.

Planted truth for the statistics (issue 9), tested in ``tests/test_inference_shared.py``:

- **a real within-segment effect** (transaction stability): the anomalous customers are drawn uniformly
  inside each segment (at ``ANOMALY_RATE``, highest in Basic) and only their single amounts get a wide spread
  (``transaction_value_volatility``); their activity is drawn like everyone else's;
- **a confounder** (seasonal preference): every customer of ``CONFOUNDED_SEGMENT`` (Basic) buys mostly in Q4,
  anomalous or not. Pooled over segments the anomalies look Q4-heavy; inside each segment they do not;
- **a constant column**: every transaction falls in a quarter, so ``quarterly_coverage_gap`` (and its ratio)
  is 0 on every record of the transactions variant: ``not_testable``.

``DemoData.customers``, ``customers_precomputed`` and ``transactions`` hold the raw text of the CSVs
(every column a string, ``""`` for a blank cell) exactly as written, including the planted bad rows.
``planted`` and ``bad_rows`` are typed ground truth.

``generate_demo`` runs the named steps of ``python_analysis.demo.steps``, one per planted part, in order.

Usage::

    python -m python_analysis.demo_data [--seeds-dir seeds]
    python -m python_analysis.demo_data --scaled-customers 1000000 --scaled-transactions 20000000 \
        --out-dir /tmp/scaled
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DEFAULT_SEED = 20261125

SEGMENTS: tuple[str, ...] = ("Premium", "High Value", "Growing", "Standard", "Basic")
SEGMENT_TARGET_RETENTION: dict[str, float] = {
    "Premium": 0.80,
    "High Value": 0.70,
    "Growing": 0.60,
    "Standard": 0.50,
    "Basic": 0.40,
}
# Segment shares from the lowest revenue upwards (Basic = bottom 25 %, ..., Premium = top 10 %).
_SEGMENTS_LOW_TO_HIGH: tuple[str, ...] = ("Basic", "Standard", "Growing", "High Value", "Premium")
_SEGMENT_SHARES_LOW_TO_HIGH: tuple[float, ...] = (0.25, 0.30, 0.20, 0.15, 0.10)

ANOMALY_THRESHOLD = 0.15
BOUNDARY_INSIDE = 0.1490  # |deviation| just inside the threshold -> normal
BOUNDARY_OUTSIDE = 0.1510  # |deviation| just outside the threshold -> anomaly
NORMAL_MAX_DEVIATION = 0.12
ANOMALY_MIN_DEVIATION = 0.16
# A segment whose normal records are lopsided (so its median is not its mean), and a segment with a pair of
# records at exactly ANOMALY_THRESHOLD from its mean (0.5 +/- 0.15: the mean 0.5 is exact in binary).
LOPSIDED_SEGMENT = "Growing"
LOPSIDED_MIN_DEVIATION = 0.03  # the lopsided normals sit at +a, +a, -2a with a in [0.03, 0.06]
EXACT_THRESHOLD_SEGMENT = "Standard"

MAIN_SEGMENTATION_DATE = "2025-06-30"
OLD_SEGMENTATION_DATE = "2024-12-31"
FIRST_MONTH = np.datetime64("2023-01", "M")
N_MONTHS = 30  # 2023-01 .. 2025-06
LAST_DATE = np.datetime64("2025-06-30", "D")
# Relative transaction volume by calendar month: Q2 dip, Q4 peak.
MONTH_WEIGHTS = np.array([1.00, 0.95, 1.05, 0.55, 0.50, 0.55, 0.95, 0.95, 1.00, 1.50, 1.70, 1.90])
SUBSIDIARIES: tuple[str, ...] = ("S01", "S02", "S03", "S04", "S05")
XSS_NAME = '<script>alert("x")</script> & Co'

CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "customer_name",
    "subsidiary_id",
    "segmentation_date",
    "profitability_segment",
    "retention_probability",
    "comprehensive_customer_score",
)
PRECOMPUTED_EXTRA_COLUMNS: tuple[str, ...] = (
    "lifecycle_stage",
    "seasonal_preference",
    "total_revenue",
    "net_profit",
    "transaction_count",
    "avg_transactions_per_month",
    "transaction_value_volatility",
    "q1_transactions",
    "q2_transactions",
    "q3_transactions",
    "q4_transactions",
    "customer_age_days",
)
TRANSACTION_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "customer_id",
    "transaction_date",
    "amount",
    "profit",
)

CUSTOMERS_FILE = "demo_customers.csv"
CUSTOMERS_PRECOMPUTED_FILE = "demo_customers_precomputed.csv"
TRANSACTIONS_FILE = "demo_transactions.csv"

# Demo shape.
_N_CUSTOMERS = 1800
_N_ZERO_TXN = 4
_N_BLANK_DATE = 5
_N_TWO_SUBSIDIARIES = 90
_N_OLDER_SNAPSHOT = 110
_N_CONFLICTS = 3
# Planted truth for the statistics (issue 9): the share of each segment whose customers get anomalous
# behaviour (a wide amount spread) and a retention far from the segment mean. Highest in Basic, which is
# also the segment that buys mostly in Q4 (the confounder).
ANOMALY_RATE: dict[str, float] = {
    "Basic": 0.16,
    "Standard": 0.08,
    "Growing": 0.05,
    "High Value": 0.04,
    "Premium": 0.03,
}
CONFOUNDED_SEGMENT = "Basic"
Q4_WEIGHT = 12.0  # relative month weight of Q4 months for CONFOUNDED_SEGMENT (other months 1)
_N_PERTURBED_QUARTERS = 40
_N_SCORE_ZERO = 2
_BASE_RATE = 1.05  # transactions per active month (median of a lognormal)
# Lifecycle rule used for the precomputed variant (mirrors the dbt vars' defaults).
_LIFECYCLE_MATURE_DAYS = 365
_LIFECYCLE_AT_RISK_DAYS = 120
_SEASONAL_PEAK_MIN_SHARE = 0.30


@dataclass(frozen=True, eq=False)
class DemoData:
    """The demo data set.

    customers, customers_precomputed, transactions: raw CSV text (all ``str``; ``""`` = blank cell), rows in
    file order, bad rows included. planted: one row per clean customer record (typed ground truth).
    bad_rows: ``file``, ``source_row_number`` (1-based data row), ``reason``.
    """

    customers: pd.DataFrame
    customers_precomputed: pd.DataFrame
    transactions: pd.DataFrame
    planted: pd.DataFrame
    bad_rows: pd.DataFrame


# --------------------------------------------------------------------------------------------------------
# shared, vectorised building blocks (used by the demo and by write_scaled_parquet)
# --------------------------------------------------------------------------------------------------------


def _month_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Month start dates (N_MONTHS + 1, datetime64[D]), days per month, cumulative seasonal weights."""
    starts = (FIRST_MONTH + np.arange(N_MONTHS + 1)).astype("datetime64[D]")
    days = np.diff(starts).astype(np.int64)
    weights = MONTH_WEIGHTS[np.arange(N_MONTHS) % 12]
    cum = np.concatenate([[0.0], np.cumsum(weights)])
    return starts, days, cum


@dataclass(frozen=True, eq=False)
class _Profiles:
    start_month: np.ndarray  # int64, 0 .. N_MONTHS-1
    end_month: np.ndarray  # int64, >= start_month
    rate: np.ndarray  # expected transactions per active month
    mean_amount: np.ndarray
    amount_sigma: np.ndarray  # lognormal sigma of single amounts
    burst_quarter: np.ndarray  # index of a 3-month window (0..9) inside the active range
    wide_sigma: np.ndarray  # the anomalous amount spread drawn for every customer (used by the demo)


def _draw_profiles(rng: np.random.Generator, n: int, anomalous: np.ndarray) -> _Profiles:
    """Per-customer activity window, spend level and amount spread. ``anomalous`` widens the spread."""
    early = rng.random(n) < 0.55
    start = np.where(early, 0, rng.integers(1, 28, n)).astype(np.int64)
    churn = (rng.random(n) < 0.12) & (start <= 25)
    churn_end = start + np.floor(rng.random(n) * (26 - start)).astype(np.int64)
    end = np.where(churn, churn_end, N_MONTHS - 1).astype(np.int64)
    rate = _BASE_RATE * np.exp(rng.normal(0.0, 0.6, n))
    mean_amount = 90.0 * np.exp(rng.normal(0.0, 0.75, n))
    wide = rng.uniform(0.75, 1.10, n)
    sigma = np.where(anomalous, wide, rng.uniform(0.12, 0.40, n))
    q_lo = start // 3
    q_hi = end // 3
    burst = q_lo + np.floor(rng.random(n) * (q_hi - q_lo + 1)).astype(np.int64)
    return _Profiles(start, end, rate, mean_amount, sigma, burst, wide)


def _simulate_transactions(
    rng: np.random.Generator,
    profiles: _Profiles,
    anomalous: np.ndarray,
    n_txn: np.ndarray,
    first: int = 0,
    last: int | None = None,
) -> dict[str, np.ndarray]:
    """Transactions of customers ``first:last``. Returns arrays ``cust`` (global index), ``date``
    (datetime64[D]), ``amount`` and ``profit`` (both rounded to cents)."""
    last = len(n_txn) if last is None else last
    counts = n_txn[first:last]
    cust = np.repeat(np.arange(first, last, dtype=np.int64), counts)
    t = len(cust)
    starts, days, cum = _month_tables()
    s = profiles.start_month[cust]
    e = profiles.end_month[cust]
    # Normal months: inverse-CDF sampling of the seasonal weights restricted to [start, end].
    lo = cum[s]
    hi = cum[e + 1]
    u = lo + rng.random(t) * (hi - lo)
    month = np.clip(np.searchsorted(cum, u, side="right") - 1, s, e)
    # Anomalous customers put most transactions into one 3-month burst window.
    in_burst = anomalous[cust] & (rng.random(t) < 0.75)
    burst_month = np.clip(3 * profiles.burst_quarter[cust] + rng.integers(0, 3, t), s, e)
    month = np.where(in_burst, burst_month, month)
    day = np.floor(rng.random(t) * days[month]).astype(np.int64)
    date = starts[month] + day
    z = rng.standard_normal(t)
    refund = rng.random(t) < 0.006
    margin = np.clip(rng.normal(0.22, 0.06, t), 0.02, 0.60)
    amount, profit = _amounts(profiles.mean_amount[cust], profiles.amount_sigma[cust], z, refund, margin)
    return {"cust": cust, "date": date, "amount": amount, "profit": profit, "z": z, "refund": refund,
            "margin": margin}


def _amounts(mean: np.ndarray, sigma: np.ndarray, z: np.ndarray, refund: np.ndarray, margin: np.ndarray):
    """Amounts (lognormal around ``mean`` with spread ``sigma``, mean-preserving; refunds negative) and
    profits, both rounded to cents, from the standard-normal draws ``z``."""
    mult = np.exp(sigma * z - 0.5 * sigma * sigma)
    amount = np.maximum(np.round(mean * mult, 2), 1.0)
    amount = np.where(refund, -amount, amount)
    profit = np.round(amount * margin, 2) + 0.0
    return amount, profit


def _redraw_q4_heavy(rng: np.random.Generator, profiles: _Profiles, sim: dict[str, np.ndarray],
                     which: np.ndarray) -> None:
    """Redraw the dates of transactions ``which`` inside their customer's active months with Q4 months
    weighted ``Q4_WEIGHT`` (other months 1). In place."""
    starts, days, _ = _month_tables()
    weights = np.where(np.arange(N_MONTHS) % 12 >= 9, Q4_WEIGHT, 1.0)
    cum = np.concatenate([[0.0], np.cumsum(weights)])
    cust = sim["cust"][which]
    s, e = profiles.start_month[cust], profiles.end_month[cust]
    u = cum[s] + rng.random(len(cust)) * (cum[e + 1] - cum[s])
    month = np.clip(np.searchsorted(cum, u, side="right") - 1, s, e)
    sim["date"][which] = starts[month] + np.floor(rng.random(len(cust)) * days[month]).astype(np.int64)


def _assign_segments(rng: np.random.Generator, revenue: np.ndarray) -> np.ndarray:
    """Segment index into _SEGMENTS_LOW_TO_HIGH from revenue with a little noise (overlap)."""
    n = len(revenue)
    noisy = np.maximum(revenue, 0.0) * np.exp(rng.normal(0.0, 0.08, n))
    order = np.argsort(noisy, kind="stable")
    bounds = np.round(np.cumsum(_SEGMENT_SHARES_LOW_TO_HIGH) * n).astype(np.int64)
    level = np.empty(n, dtype=np.int64)
    level[order] = np.searchsorted(bounds, np.arange(n), side="right")
    return np.minimum(level, len(_SEGMENTS_LOW_TO_HIGH) - 1)


def _scores(rng: np.random.Generator, revenue: np.ndarray) -> np.ndarray:
    """Integer score 1..100 correlated with (log) revenue."""
    n = len(revenue)
    order = np.argsort(np.log1p(np.maximum(revenue, 0.0)), kind="stable")
    pct = np.empty(n)
    pct[order] = (np.arange(n) + 0.5) / n
    return np.clip(np.round(15 + 75 * pct + rng.normal(0.0, 6.0, n)), 1, 100).astype(np.int64)


# --------------------------------------------------------------------------------------------------------
# formatting helpers
# --------------------------------------------------------------------------------------------------------


def _fmt(values: np.ndarray, decimals: int) -> list[str]:
    return ["" if not np.isfinite(v) else f"{v + 0.0:.{decimals}f}" for v in np.asarray(values, dtype=float)]


def _fmt_int(values: np.ndarray) -> list[str]:
    return ["" if not np.isfinite(v) else str(int(v)) for v in np.asarray(values, dtype=float)]


# --------------------------------------------------------------------------------------------------------
# point-in-time behaviour (precomputed variant)
# --------------------------------------------------------------------------------------------------------


def _point_in_time_behaviour(
    record_customer: np.ndarray, record_as_of: np.ndarray, txn: pd.DataFrame
) -> pd.DataFrame:
    """Behaviour per record from transactions with date <= the record's as-of date.

    record_customer: customer_id per record; record_as_of: datetime64[D] per record.
    txn: clean transactions with customer_id, date (datetime64), amount, profit.
    """
    n = len(record_customer)
    recs = pd.DataFrame({"rec": np.arange(n), "customer_id": record_customer, "as_of": record_as_of})
    m = recs.merge(txn, on="customer_id", how="inner")
    m = m[m["date"] <= m["as_of"]].copy()
    m["quarter"] = m["date"].dt.quarter
    m["ym"] = m["date"].dt.year * 12 + m["date"].dt.month
    g = m.groupby("rec")
    agg = pd.DataFrame(
        {
            "transaction_count": g.size(),
            "total_revenue": g["amount"].sum(),
            "net_profit": g["profit"].sum(),
            "std": g["amount"].std(ddof=1),
            "mean": g["amount"].mean(),
            "first": g["date"].min(),
            "last": g["date"].max(),
            "months": g["ym"].nunique(),
        }
    )
    quarters = m.groupby(["rec", "quarter"]).size().unstack(fill_value=0)
    out = pd.DataFrame(index=np.arange(n))
    out = out.join(agg).join(quarters.reindex(columns=[1, 2, 3, 4], fill_value=0))
    count = out["transaction_count"].fillna(0).to_numpy(dtype=np.int64)
    mean = out["mean"].to_numpy(dtype=float)
    std = out["std"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        vol = np.where((count >= 2) & (mean != 0), std / mean, np.nan)
        per_month = np.where(count > 0, count / out["months"].to_numpy(dtype=float), 0.0)
    as_of = pd.to_datetime(pd.Series(record_as_of))
    age = (as_of - out["first"]).dt.days.to_numpy(dtype=float)
    recency = (as_of - out["last"]).dt.days.to_numpy(dtype=float)
    q = np.column_stack([out[k].fillna(0).to_numpy(dtype=np.int64) for k in (1, 2, 3, 4)])
    return pd.DataFrame(
        {
            "transaction_count": count,
            "total_revenue": np.round(out["total_revenue"].fillna(0.0).to_numpy(dtype=float), 2),
            "net_profit": np.round(out["net_profit"].fillna(0.0).to_numpy(dtype=float), 2),
            "avg_transactions_per_month": np.round(per_month, 4),
            "transaction_value_volatility": np.round(vol, 4),
            "q1": q[:, 0],
            "q2": q[:, 1],
            "q3": q[:, 2],
            "q4": q[:, 3],
            "customer_age_days": age,
            "recency_days": recency,
        }
    )


def _lifecycle(count: np.ndarray, age: np.ndarray, recency: np.ndarray) -> np.ndarray:
    at_risk = (count == 0) | (recency > _LIFECYCLE_AT_RISK_DAYS)
    mature = age >= _LIFECYCLE_MATURE_DAYS
    return np.where(at_risk, "At Risk", np.where(mature, "Mature", "Growth"))


def _seasonal_preference(q: np.ndarray) -> np.ndarray:
    total = q.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = q / total[:, None]
    top = np.argmax(q, axis=1)
    top_share = np.where(total > 0, share[np.arange(len(q)), top], 0.0)
    label = np.array([f"Q{k + 1} Peak" for k in range(4)])[top]
    return np.where(top_share >= _SEASONAL_PEAK_MIN_SHARE, label, "Balanced")


# --------------------------------------------------------------------------------------------------------
# retention pairs
# --------------------------------------------------------------------------------------------------------


def _pair_deviations(
    rng: np.random.Generator,
    n_anomaly: int,
    n_normal: int,
    m: float,
    boundary_outside_pairs: int,
    boundary_inside_pairs: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed deviations for ``n_anomaly`` anomaly records (even count) followed by ``n_normal`` normal
    records; the values sum to exactly zero (pairs +e/-e, one 0 when n_normal is odd).
    Returns (signed deviation, is_boundary, is_anomaly)."""
    assert n_anomaly % 2 == 0
    e_max = round(min(m, 1.0 - m) - 0.01, 4)
    dev: list[float] = []
    boundary: list[bool] = []
    n_anom_pairs = n_anomaly // 2
    for k in range(n_anom_pairs):
        if k < boundary_outside_pairs:
            e, b = BOUNDARY_OUTSIDE, True
        else:
            e, b = round(float(rng.uniform(ANOMALY_MIN_DEVIATION, e_max)), 4), False
        dev += [e, -e]
        boundary += [b, b]
    n_pairs = n_normal // 2
    for k in range(n_pairs):
        if k < boundary_inside_pairs:
            e, b = BOUNDARY_INSIDE, True
        else:
            e, b = round(float(rng.uniform(0.001, NORMAL_MAX_DEVIATION)), 4), False
        dev += [e, -e]
        boundary += [b, b]
    if n_normal % 2:
        dev.append(0.0)
        boundary.append(False)
    sign = np.array(dev)
    # Randomise which member of each pair is above the mean.
    flip = rng.random(len(sign) // 2) < 0.5
    for k in np.flatnonzero(flip):
        sign[2 * k], sign[2 * k + 1] = sign[2 * k + 1], sign[2 * k]
    is_anom = np.zeros(len(sign), dtype=bool)
    is_anom[:n_anomaly] = True
    return sign, np.array(boundary, dtype=bool), is_anom


def _make_segment_lopsided(
    retention: np.ndarray, groups: list[np.ndarray], is_normal: np.ndarray, m: float
) -> None:
    """In each group (the records of one segment that one grain keeps or drops), replace the normal records'
    symmetric deviations by triples ``(+a, +a, -2a)``, ``a`` in [0.03, 0.06] derived from the old deviation:
    the group's sum (so both grains' mean ``m``) and every normal record's status are unchanged, but two thirds
    of the normals sit above ``m``, so the median is about 0.035 above the mean. A leftover of one record
    becomes ``m``; a leftover of two becomes ``m +/- e``. In place; draws nothing from the generator."""
    for grp in groups:
        idx = np.sort(grp[is_normal[grp] & (np.round(retention[grp] - m, 4) != 0)])
        dev = np.abs(np.round(retention[idx] - m, 4))
        new = np.zeros(len(idx))
        n_triples = len(idx) // 3
        for t in range(n_triples):
            a = round(LOPSIDED_MIN_DEVIATION + dev[3 * t] / 4, 4)
            new[3 * t : 3 * t + 3] = (a, a, -2 * a)
        if len(idx) % 3 == 2:
            new[-2:] = (dev[-2], -dev[-2])
        retention[idx] = np.round(m + new, 4)


def _plant_exact_threshold_pair(
    retention: np.ndarray, is_boundary: np.ndarray, grp: np.ndarray, is_normal: np.ndarray, m: float
) -> None:
    """Move one symmetric normal pair ``(m + e, m - e)`` of ``grp`` to ``m +/- ANOMALY_THRESHOLD`` exactly (as
    decimals) and mark it as boundary records. The deviation rounded to 10 decimals is then exactly the
    threshold: not an anomaly with ``>``, an anomaly with ``>=``. In place; draws nothing from the generator."""
    cand = np.sort(grp[is_normal[grp] & ~is_boundary[grp]])
    dev = np.round(retention[cand] - m, 4)
    i = cand[np.flatnonzero(dev > 0)[0]]
    j = cand[np.flatnonzero(dev == -np.round(retention[i] - m, 4))[0]]
    retention[i] = round(m + ANOMALY_THRESHOLD, 4)
    retention[j] = round(m - ANOMALY_THRESHOLD, 4)
    is_boundary[[i, j]] = True


# --------------------------------------------------------------------------------------------------------
# the demo
# --------------------------------------------------------------------------------------------------------


def generate_demo(seed: int = DEFAULT_SEED) -> DemoData:
    """Build the demo data set deterministically from ``seed``.

    The steps (``python_analysis.demo.steps``) each plant one part of the truth; they share one generator,
    so their order is part of the data.
    """
    from python_analysis.demo import steps

    rng = np.random.default_rng(seed)
    n = _N_CUSTOMERS
    cust_ids = np.array([f"C{i:06d}" for i in range(1, n + 1)])
    names = np.array([f"Customer {i:04d}" for i in range(1, n + 1)], dtype=object)

    roles = steps.draw_structural_roles(rng, n)
    beh = steps.draw_behaviour(rng, n, roles)
    anomalous = steps.plant_anomalous_behaviour(rng, roles, beh)
    steps.plant_confounder(rng, beh, anomalous)
    steps.plant_xss_name(rng, names, anomalous)
    recs = steps.build_customer_records(rng, roles, beh, anomalous)
    values = steps.draw_retention(rng, recs)
    steps.give_xss_name_to_top_anomaly(names, recs, values)
    score = steps.draw_scores(rng, recs, beh.base_score, values.is_boundary)
    steps.plant_lopsided_segment_and_threshold_pair(recs, values)

    order = steps.draw_file_order(rng, recs, roles.conflict)
    recs = recs.iloc[order].reset_index(drop=True)
    values = steps.RecordValues(values.retention[order], values.is_boundary[order], values.is_anomaly[order])
    clean = steps.clean_customer_rows(recs, values, score[order], cust_ids, names)
    cust_file = steps.insert_bad_customers(rng, clean, n)

    clean_txn, t_text = steps.clean_transactions(beh.sim, cust_ids)
    txn, kinds = steps.insert_bad_transactions(rng, t_text, cust_ids, beh.n_txn)
    txn_file = steps.insert_duplicate_transactions(rng, txn, kinds)
    pre, perturbed = steps.precomputed_variant(
        rng, cust_file.customers, clean_txn, cust_file.clean_row_number
    )

    return DemoData(
        customers=cust_file.customers.astype(str),
        customers_precomputed=pre,
        transactions=txn_file.transactions.astype(str),
        planted=steps.ground_truth(clean, recs, values, cust_file.clean_row_number, perturbed),
        bad_rows=steps.bad_rows_table(cust_file, txn_file),
    )


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")
    return path


def write_seeds(demo: DemoData, seeds_dir: Path) -> list[Path]:
    """Write the three demo seed CSVs into ``seeds_dir``; returns their paths."""
    seeds_dir = Path(seeds_dir)
    return [
        _write_csv(demo.customers, seeds_dir / CUSTOMERS_FILE),
        _write_csv(demo.customers_precomputed, seeds_dir / CUSTOMERS_PRECOMPUTED_FILE),
        _write_csv(demo.transactions, seeds_dir / TRANSACTIONS_FILE),
    ]


# --------------------------------------------------------------------------------------------------------
# scaled Parquet for benchmarks
# --------------------------------------------------------------------------------------------------------


def _prefixed_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers, type=pa.int64()), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def write_scaled_parquet(
    n_customers: int,
    n_transactions: int,
    out_dir: Path,
    seed: int = DEFAULT_SEED,
    chunk_transactions: int = 2_000_000,
    order: str = "customer",
) -> dict[str, Path]:
    """Write ``customers.parquet`` (transactions variant columns) and ``transactions.parquet`` with
    ``n_customers`` records (one per customer) and exactly ``n_transactions`` transactions.

    Fully vectorised; transactions are generated and written in chunks of about ``chunk_transactions``.
    Anomalies are not planted exactly (retention deviations are drawn, not paired).

    ``order``: ``"customer"`` writes each customer's transactions together (customers in id order);
    ``"time"`` writes them like a real transaction log: sorted by date, customers interleaved (ties in a
    fixed pseudo-random order), with ``transaction_id`` numbered in that order. Both orders hold the same
    transactions (same customers, dates, amounts, profits). The time order is made by DuckDB from the
    customer-ordered file, sorting out of core under a 1 GB memory limit.
    Long: one streaming writer for both files of a benchmark size (#11)."""
    if n_customers < 1 or n_transactions < 0:
        raise ValueError("n_customers must be >= 1 and n_transactions >= 0")
    if order not in SCALED_ORDERS:
        raise ValueError(f"order must be one of {SCALED_ORDERS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(n_customers)
    anomalous = rng.random(n) < 0.07
    profiles = _draw_profiles(rng, n, anomalous)
    weight = profiles.rate * (profiles.end_month - profiles.start_month + 1)
    n_txn = rng.multinomial(int(n_transactions), weight / weight.sum()).astype(np.int64)

    cust_width = max(6, len(str(n)))
    txn_width = max(7, len(str(int(n_transactions))))
    customer_ids = _prefixed_ids("C", np.arange(1, n + 1), cust_width)
    txn_schema = pa.schema(
        [
            ("transaction_id", pa.string()),
            ("customer_id", pa.string()),
            ("transaction_date", pa.date32()),
            ("amount", pa.float64()),
            ("profit", pa.float64()),
        ]
    )
    txn_path = out_dir / "transactions.parquet"
    revenue = np.zeros(n)
    cum = np.cumsum(n_txn)
    next_id = 1
    first = 0
    with pq.ParquetWriter(txn_path, txn_schema, compression="snappy") as writer:
        while first < n:
            base = cum[first - 1] if first > 0 else 0
            last = int(np.searchsorted(cum, base + chunk_transactions, side="right"))
            last = min(max(last, first + 1), n)
            sim = _simulate_transactions(rng, profiles, anomalous, n_txn, first, last)
            t = len(sim["cust"])
            if t:
                revenue += np.bincount(sim["cust"], weights=sim["amount"], minlength=n)
                table = pa.table(
                    {
                        "transaction_id": _prefixed_ids("T", np.arange(next_id, next_id + t), txn_width),
                        "customer_id": customer_ids.take(pa.array(sim["cust"])),
                        "transaction_date": pa.array(sim["date"], type=pa.date32()),
                        "amount": pa.array(sim["amount"]),
                        "profit": pa.array(sim["profit"]),
                    },
                    schema=txn_schema,
                )
                writer.write_table(table)
                next_id += t
            first = last

    seg_level = _assign_segments(rng, revenue)
    segment = np.array(_SEGMENTS_LOW_TO_HIGH)[seg_level]
    target = np.array([SEGMENT_TARGET_RETENTION[s] for s in _SEGMENTS_LOW_TO_HIGH])[seg_level]
    e_max = np.minimum(target, 1 - target) - 0.01
    normal_dev = rng.uniform(-NORMAL_MAX_DEVIATION, NORMAL_MAX_DEVIATION, n)
    anom_dev = ANOMALY_MIN_DEVIATION + rng.random(n) * (e_max - ANOMALY_MIN_DEVIATION)
    anom_dev *= np.where(rng.random(n) < 0.5, -1.0, 1.0)
    retention = np.round(target + np.where(anomalous, anom_dev, normal_dev), 4)
    score = _scores(rng, revenue)
    score[rng.random(n) < 0.001] = 0
    customers = pa.table(
        {
            "customer_id": customer_ids,
            "customer_name": _prefixed_ids("Customer ", np.arange(1, n + 1), max(4, len(str(n)))),
            "subsidiary_id": pa.array(np.array(SUBSIDIARIES)[rng.integers(0, 5, n)]),
            "segmentation_date": pa.array(
                np.full(n, np.datetime64(MAIN_SEGMENTATION_DATE, "D")), type=pa.date32()
            ),
            "profitability_segment": pa.array(segment),
            "retention_probability": pa.array(retention),
            "comprehensive_customer_score": pa.array(score, type=pa.int64()),
        }
    )
    cust_path = out_dir / "customers.parquet"
    pq.write_table(customers, cust_path, compression="snappy")
    if order == "time":
        _reorder_by_time(txn_path, txn_width)
    return {"customers": cust_path, "transactions": txn_path}


SCALED_ORDERS = ("customer", "time")


def _reorder_by_time(txn_path: Path, id_width: int) -> None:
    """Rewrite ``txn_path`` in date order (customers interleaved), ids renumbered in that order."""
    import tempfile

    import duckdb

    clustered = txn_path.with_name(txn_path.stem + ".by_customer.parquet")
    os.replace(txn_path, clustered)
    with tempfile.TemporaryDirectory(prefix="segfit-sort-", dir=txn_path.parent) as spill, \
            duckdb.connect() as con:
        con.execute("set memory_limit = '1GB'")
        con.execute("set temp_directory = ?", [spill])
        con.execute("set preserve_insertion_order = true")
        con.execute("set enable_progress_bar = false")
        relation = con.read_parquet(str(clustered))
        ordered = relation.project(
            f"'T' || lpad(cast(row_number() over (order by transaction_date, hash(transaction_id), "
            f"transaction_id) as varchar), {int(id_width)}, '0') as transaction_id, "
            "customer_id, transaction_date, amount, profit"
        ).order("transaction_id")
        ordered.write_parquet(str(txn_path), compression="snappy")
    clustered.unlink()


# --------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate segfit's demo seeds (or scaled Parquet files).")
    parser.add_argument("--seeds-dir", type=Path, default=Path("seeds"))
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--scaled-customers", type=int, default=None, help="write scaled Parquet instead")
    parser.add_argument("--scaled-transactions", type=int, default=None)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/data"))
    parser.add_argument("--order", choices=SCALED_ORDERS, default="customer",
                        help="scaled transactions: grouped by customer, or in date order (a real log)")
    args = parser.parse_args(argv)
    if args.scaled_customers is not None:
        n_txn = (
            args.scaled_transactions if args.scaled_transactions is not None else 20 * args.scaled_customers
        )
        paths = write_scaled_parquet(args.scaled_customers, n_txn, args.out_dir, seed=args.seed,
                                     order=args.order)
        for p in paths.values():
            print(p)
        return 0
    demo = generate_demo(args.seed)
    for p in write_seeds(demo, args.seeds_dir):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
