"""customer_segment_fit (and the marts built on it) against an independent pandas implementation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import StratifiedTable

from python_analysis import pipeline, warehouse
from python_analysis.demo_data import generate_demo
from python_analysis.inference import recompute_flags
from tests import oracle
from tests.conftest import SEEDS, SHARED_EXTRACT

COMPARED = [
    "customer_id", "subsidiary_id", "profitability_segment", "retention_probability", "total_revenue",
    "net_profit", "transaction_count", "avg_transactions_per_month", "transaction_value_volatility",
    "q1_transactions", "q2_transactions", "q3_transactions", "q4_transactions", "customer_age_days",
    "q1_share", "q2_share", "q3_share", "q4_share", "seasonality_std", "seasonality_imbalance",
    "seasonality_entropy_norm", "seasonality_cv", "months_active", "expected_transactions",
    "txn_consistency_ratio", "txn_consistency_error", "quarterly_coverage_gap", "quarterly_coverage_gap_ratio",
    "revenue_per_score", "value_mismatch_z", "segment_avg_retention", "retention_deviation",
    "deviation_direction", "is_classification_anomaly", "seasonal_preference", "lifecycle_stage",
]

CASES = {
    "transactions-all": (pipeline.BuildOptions(grain="all"), "demo_customers.csv", "demo_transactions.csv"),
    "transactions-latest": (pipeline.BuildOptions(grain="latest"), "demo_customers.csv", "demo_transactions.csv"),
    "precomputed-all": (
        pipeline.BuildOptions(grain="all", demo_variant="precomputed"), "demo_customers_precomputed.csv", None
    ),
    "precomputed-latest": (
        pipeline.BuildOptions(grain="latest", demo_variant="precomputed"), "demo_customers_precomputed.csv", None
    ),
}


def assert_frames_agree(actual: pd.DataFrame, expected: pd.DataFrame, columns: list[str]) -> None:
    assert len(actual) == len(expected), "row counts differ"
    merged = actual.merge(expected, on="source_row_number", how="outer", suffixes=("_sql", "_oracle"),
                          indicator=True)
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both", "source_row_number"]
    problems = []
    for column in columns:
        left, right = merged[f"{column}_sql"], merged[f"{column}_oracle"]
        if pd.api.types.is_numeric_dtype(right) and not pd.api.types.is_bool_dtype(right):
            a = pd.to_numeric(left, errors="coerce").astype("float64").to_numpy()
            b = pd.to_numeric(right, errors="coerce").astype("float64").to_numpy()
            same = np.isclose(a, b, rtol=1e-9, atol=1e-9) | (np.isnan(a) & np.isnan(b))
        else:
            a = left.astype("object").where(left.notna(), None)
            b = right.astype("object").where(right.notna(), None)
            same = np.array([x == y for x, y in zip(a, b, strict=True)])
        if not same.all():
            bad = merged.loc[~same, ["source_row_number", f"{column}_sql", f"{column}_oracle"]].head(3)
            problems.append(f"{column}: {int((~same).sum())} rows differ, e.g.\n{bad.to_string()}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, build_warehouse):
    options, customers, transactions = CASES[request.param]
    path = build_warehouse(options)
    fit = warehouse.read_tables(path, {"fit": "marts.customer_segment_fit"})["fit"]
    expected = oracle.segment_fit(SEEDS / customers, SEEDS / transactions if transactions else None,
                                  grain=options.grain)
    return request.param, fit, expected, path


def test_customer_segment_fit_matches_the_oracle(case):
    _, fit, expected, _ = case
    assert_frames_agree(fit, expected, COMPARED)


def test_planted_anomalies_are_recovered_exactly(case):
    name, fit, _, _ = case
    planted = generate_demo().planted
    if name.endswith("latest"):
        planted = planted[planted["kept_in_latest"]]
    truth = set(planted.loc[planted["is_planted_anomaly"], "source_row_number"])
    found = set(fit.loc[fit["is_classification_anomaly"], "source_row_number"])
    assert found == truth
    boundary = planted[planted["is_boundary"]]
    flags = fit.set_index("source_row_number")["is_classification_anomaly"]
    assert boundary["is_planted_anomaly"].any() and (~boundary["is_planted_anomaly"]).any()
    for row in boundary.itertuples():
        assert flags[row.source_row_number] == row.is_planted_anomaly


def test_summary_marts_follow_from_the_fit(case):
    _, _, expected, path = case
    marts = warehouse.read_marts(path)
    summary = marts["segment_retention_summary"].set_index("profitability_segment").sort_index()
    grouped = expected.groupby("profitability_segment")
    anomalies = expected[expected["is_classification_anomaly"]]
    assert summary["record_count"].to_dict() == grouped.size().to_dict()
    assert summary["distinct_customers"].to_dict() == grouped["customer_id"].nunique().to_dict()
    assert summary["anomaly_count"].to_dict() == grouped["is_classification_anomaly"].sum().to_dict()
    above = anomalies[anomalies["retention_deviation"] >= 0].groupby("profitability_segment").size()
    assert summary["above_count"].to_dict() == above.reindex(summary.index, fill_value=0).to_dict()
    np.testing.assert_allclose(summary["avg_retention"], grouped["retention_probability"].mean())
    assert len(marts["classification_anomalies"]) == len(anomalies)
    ranked = marts["classification_anomalies"].sort_values("anomaly_rank")
    assert ranked["abs_retention_deviation"].is_monotonic_decreasing

    comparison = marts["anomaly_feature_comparison"].set_index(["feature_name", "anomaly_group"])
    groups = {"anomaly": expected[expected["is_classification_anomaly"]],
              "normal": expected[~expected["is_classification_anomaly"]]}
    for feature in ["transaction_value_volatility", "seasonality_cv", "txn_consistency_error", "q4_share"]:
        for group, frame in groups.items():
            row = comparison.loc[(feature, group)]
            values = frame[feature].dropna()
            assert row["n"] == len(values)
            np.testing.assert_allclose(row["mean_value"], values.mean())
            np.testing.assert_allclose(row["median_value"], values.median())

    lift = marts["anomaly_rule_lift"].set_index("feature_name")
    for feature, threshold in [("seasonality_cv", 1.0), ("transaction_value_volatility", 0.7),
                               ("txn_consistency_error", 0.6)]:
        hits_a = int((groups["anomaly"][feature] > threshold).sum())
        hits_n = int((groups["normal"][feature] > threshold).sum())
        assert lift.loc[feature, "anomaly_hits"] == hits_a
        assert lift.loc[feature, "normal_hits"] == hits_n
        expected_lift = (hits_a / len(groups["anomaly"]) - hits_n / len(groups["normal"])) * 100
        np.testing.assert_allclose(lift.loc[feature, "hit_rate_difference_pp"], expected_lift)
        n_a, n_n = len(groups["anomaly"]), len(groups["normal"])
        if hits_a + hits_n:
            np.testing.assert_allclose(lift.loc[feature, "lift"], (hits_a / (hits_a + hits_n)) / (n_a / (n_a + n_n)))
        if (n_a - hits_a) * hits_n:
            np.testing.assert_allclose(lift.loc[feature, "odds_ratio"],
                                       hits_a * (n_n - hits_n) / ((n_a - hits_a) * hits_n))
        # Mantel-Haenszel OR within segment, from statsmodels on per-segment tables (segments with both groups)
        tables = []
        for _, part in expected.groupby("profitability_segment"):
            flag_s, hit_s = part["is_classification_anomaly"], part[feature] > threshold
            if flag_s.any() and (~flag_s).any():
                tables.append([[int((hit_s & flag_s).sum()), int((~hit_s & flag_s).sum())],
                               [int((hit_s & ~flag_s).sum()), int((~hit_s & ~flag_s).sum())]])
        assert lift.loc[feature, "mh_segments"] == len(tables)
        num = sum(t[0][0] * t[1][1] / (sum(map(sum, t))) for t in tables)
        den = sum(t[0][1] * t[1][0] / (sum(map(sum, t))) for t in tables)
        if den:
            np.testing.assert_allclose(lift.loc[feature, "mh_odds_ratio"],
                                       StratifiedTable(np.dstack([np.array(t, float) for t in tables]))
                                       .oddsratio_pooled)
            np.testing.assert_allclose(lift.loc[feature, "mh_odds_ratio"], num / den)

    crosstabs = marts["anomaly_crosstabs"]
    season = crosstabs[crosstabs["dimension"] == "seasonal_preference"].set_index("dimension_value")
    oracle_season = expected["seasonal_preference"].fillna("(missing)")
    assert season["record_count"].to_dict() == oracle_season.value_counts().to_dict()


def test_the_shared_real_extract_builds_unchanged_and_matches_the_oracle(build_warehouse):
    if not SHARED_EXTRACT.exists():
        pytest.skip("../shared/data is not beside the checkout")
    path = build_warehouse(pipeline.BuildOptions(customers=SHARED_EXTRACT))
    marts = warehouse.read_marts(path)
    expected = oracle.segment_fit(SHARED_EXTRACT)
    assert_frames_agree(marts["customer_segment_fit"], expected, COMPARED)
    reconciliation = marts["input_row_reconciliation"].set_index("source")
    assert reconciliation.loc["customers", "input_rows"] == 149
    assert reconciliation["is_reconciled"].all()
    # the extract's repeated (customer, subsidiary) keys and mismatching quarter sums are reported, not dropped
    keys = oracle.read_raw(SHARED_EXTRACT)
    repeated = keys.duplicated(["customer_id", "subsidiary_id"], keep=False)
    assert marts["duplicate_customer_keys"]["record_count"].sum() == int(repeated.sum())
    issues = marts["data_quality_issues"]
    # every later occurrence of a repeated key is a warning naming the key's first data row
    key_columns = ["customer_id", "subsidiary_id"]
    first_row = keys.groupby(key_columns, dropna=False)["source_row_number"].transform("min")
    later = keys[keys["source_row_number"] > first_row]
    expected_warnings = {
        int(row): f"duplicate business key (customer_id, subsidiary_id), first seen at data row {int(first)}"
        for row, first in zip(later["source_row_number"], first_row[later.index], strict=True)
    }
    duplicate_rows = issues[issues["column_name"] == "customer_id, subsidiary_id"]
    assert dict(zip(duplicate_rows["source_row_number"].astype(int), duplicate_rows["reason"], strict=True)) \
        == expected_warnings
    assert len(expected_warnings) > 0
    quarter_rows = issues["reason"].str.startswith("quarter counts")
    q = keys[["q1_transactions", "q2_transactions", "q3_transactions", "q4_transactions"]].astype(int).sum(axis=1)
    assert int(quarter_rows.sum()) == int((q != keys["transaction_count"].astype(int)).sum())


def test_zscore_threshold_mode_matches_the_oracle(build_warehouse):
    """--threshold-mode zscore on the shared extract: |deviation| / segment sample SD > 1.0, flags and segment SDs
    recomputed by the pandas oracle; also the Python recomputation the inference uses (latest grain) agrees."""
    if not SHARED_EXTRACT.exists():
        pytest.skip("../shared/data is not beside the checkout")
    path = build_warehouse(pipeline.BuildOptions(customers=SHARED_EXTRACT, threshold=1.0, threshold_mode="zscore"))
    fit = warehouse.read_marts(path)["customer_segment_fit"]
    expected = oracle.segment_fit(SHARED_EXTRACT, threshold=1.0, mode="zscore")
    assert_frames_agree(fit, expected, [*COMPARED, "segment_sd_retention"])
    assert set(fit["anomaly_threshold_mode"]) == {"zscore"}
    flags = expected["is_classification_anomaly"]
    absolute = oracle.segment_fit(SHARED_EXTRACT)["is_classification_anomaly"]
    assert 0 < flags.sum() < len(flags) and (flags != absolute).any()  # a different rule, not a copy
    again = recompute_flags(fit)
    assert again["is_classification_anomaly"].tolist() == fit["is_classification_anomaly"].astype(bool).tolist()
