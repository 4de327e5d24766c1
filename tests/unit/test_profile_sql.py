"""The data profile computed in SQL (large data read in bounded memory, #11) is the pandas profile of the same
table as the report reads it: constant, all-null and identical columns, and the segment bands, with the edge
cases planted (NaN and null at the same places, infinities, blank and padded text, a null or blank segment).
Under a second."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from python_analysis.profile import data_profile, data_profile_sql
from python_analysis.warehouse.reading import fetch_frame

try:
    from tests.report_fixtures import make_fit
except ImportError:  # tests/ is not a package
    from report_fixtures import make_fit


def _planted(seed: int) -> pd.DataFrame:
    fit = make_fit(300, seed)
    n = len(fit)
    rng = np.random.default_rng(seed)
    gaps = rng.random(n) < 0.1
    fit["months_active"] = 7.0  # constant
    fit["seasonality_cv"] = np.nan  # all null
    fit["expected_transactions"] = np.where(gaps, np.nan, fit["total_revenue"] * 3)
    fit["txn_consistency_ratio"] = fit["expected_transactions"]  # identical, NaN at the same places
    fit["revenue_per_score"] = np.where(gaps, 1.0, fit["total_revenue"] * 3)  # equal but where the others are NaN
    fit["value_mismatch_z"] = np.where(rng.random(n) < 0.05, np.inf, rng.normal(size=n))  # infinities
    fit["quarterly_coverage_gap"] = pd.array(np.where(gaps, None, 2), dtype="Int64")  # one value and nulls
    fit["quarterly_coverage_gap_ratio"] = np.where(np.arange(n) == 5, -np.inf, 0.5)  # constant among finite
    fit["lifecycle_stage"] = np.where(rng.random(n) < 0.5, " Mature", "Mature  ")  # one value once stripped
    fit["seasonal_preference"] = np.where(rng.random(n) < 0.5, "   ", None)  # blank or null only
    # a band feature: disjoint per-segment ranges (after earlier band columns with a NaN are passed over)
    fit.loc[3, "total_revenue"] = np.nan
    fit.loc[4, "net_profit"] = np.nan
    order = {s: i for i, s in enumerate(sorted(fit["profitability_segment"].unique()))}
    fit["customer_age_days"] = [order[s] * 1000 + i % 500 for i, s in enumerate(fit["profitability_segment"])]
    return fit


CASES = {
    "plain": lambda: make_fit(400, 3),
    "planted": lambda: _planted(1),
    "missing segments": lambda: _planted(2).assign(
        profitability_segment=lambda f: np.where(np.arange(len(f)) % 7 == 0, None,
                                                 np.where(np.arange(len(f)) % 11 == 0, "  ",
                                                          f["profitability_segment"]))),
    "one segment": lambda: _planted(3).assign(profitability_segment="Only"),
    "empty": lambda: make_fit(50, 4).iloc[:0],
}


@pytest.mark.parametrize("head_rows", [0, 4096])  # 0: every pair compared in SQL, none pruned in numpy first
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_sql_profile_is_the_pandas_profile(case, head_rows):
    frame = CASES[case]()
    with duckdb.connect() as con:
        con.execute("create schema marts")
        con.register("planted", frame)
        con.execute("create table marts.customer_segment_fit as select * from planted")
        con.unregister("planted")
        read = fetch_frame(con, "select * from marts.customer_segment_fit")  # as the report reads it
        columns = list(read.columns)
        expected = data_profile(read)
        got = data_profile_sql(con, "marts.customer_segment_fit", columns, len(read), head_rows=head_rows)
    assert got == expected
    if case == "planted":  # the planted cases are found (so the comparison is not between two empty profiles)
        assert {"months_active", "quarterly_coverage_gap", "quarterly_coverage_gap_ratio",
                "lifecycle_stage"} <= set(expected.constant_columns)
        assert {"seasonality_cv", "seasonal_preference"} <= set(expected.all_null_columns)
        assert ("expected_transactions", "txn_consistency_ratio") in expected.identical_columns
        assert expected.band_feature == "customer_age_days"


def test_more_spellings_than_the_limit_still_count_as_one_value():
    frame = _planted(5)
    frame["lifecycle_stage"] = [" " * (i % 40) + "Mature" for i in range(len(frame))]
    with duckdb.connect() as con:
        con.execute("create schema marts")
        con.register("planted", frame)
        con.execute("create table marts.customer_segment_fit as select * from planted")
        read = fetch_frame(con, "select * from marts.customer_segment_fit")
        got = data_profile_sql(con, "marts.customer_segment_fit", list(read.columns), len(read), distinct_limit=5)
    assert "lifecycle_stage" in got.constant_columns
    assert got == data_profile(read)
