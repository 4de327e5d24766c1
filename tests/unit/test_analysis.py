"""Statistics over the marts: Mann-Whitney verdicts, mart pass-through, data quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from python_analysis.analysis import (
    as_bool,
    classify_difference,
    crosstab_association,
    data_quality_summary,
    feature_comparison,
    feature_significance,
    mann_whitney,
    segment_summary,
    segments_without_anomalies,
    top_anomalies,
    value_realization,
)
from python_analysis.config import ReportConfig

try:
    from tests.report_fixtures import (
        AMP_STAGE,
        crosstabs_of,
        feature_comparison_of,
        make_fit,
        make_marts,
        segment_summary_of,
    )
except ImportError:  # tests/ is not a package
    from report_fixtures import (
        AMP_STAGE,
        crosstabs_of,
        feature_comparison_of,
        make_fit,
        make_marts,
        segment_summary_of,
    )

CONFIG = ReportConfig()


def _groups(shift: float, n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "is_classification_anomaly": [True] * n + [False] * n,
            "x": np.concatenate([rng.normal(shift, 1, n), rng.normal(0, 1, n)]),
        }
    )


def test_shifted_groups_are_large():
    result = feature_significance(_groups(3.0), ["x"], CONFIG).iloc[0]
    assert result["verdict"] == "large"
    assert result["rank_biserial"] > 0.9
    assert result["direction"] == "higher in anomalies"
    assert result["p_value"] < 1e-10


def test_lower_values_in_anomalies_are_large_with_a_two_sided_p_value():
    # the mirror of the case above: a one-sided test ("anomalies greater") would call this noise
    frame = _groups(-1.0)
    result = feature_significance(frame, ["x"], CONFIG).iloc[0]
    anomaly = frame.loc[frame["is_classification_anomaly"], "x"].to_numpy()
    normal = frame.loc[~frame["is_classification_anomaly"], "x"].to_numpy()
    expected = stats.mannwhitneyu(anomaly, normal, alternative="two-sided")
    assert result["p_value"] == pytest.approx(float(expected.pvalue), rel=1e-9)
    assert result["u_statistic"] == pytest.approx(float(expected.statistic))
    assert result["rank_biserial"] == pytest.approx(2 * expected.statistic / (len(anomaly) * len(normal)) - 1)
    assert result["rank_biserial"] < -CONFIG.effect_large and result["p_value"] < CONFIG.alpha_large
    assert result["verdict"] == "large"
    assert result["direction"] == "lower in anomalies"


def test_identical_distributions_are_noise():
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, 300)
    frame = pd.DataFrame({"is_classification_anomaly": [True, False] * 150, "x": np.repeat(values[::2], 2)})
    result = feature_significance(frame, ["x"], CONFIG).iloc[0]
    assert result["verdict"] == "noise"
    assert abs(result["rank_biserial"]) < 0.05


def test_all_tied_values_are_noise_not_nan():
    u, p, r = mann_whitney(np.ones(5), np.ones(7))
    assert p == 1.0 and r == 0.0


def test_empty_group_is_insufficient():
    frame = pd.DataFrame({"is_classification_anomaly": [False] * 5, "x": np.arange(5.0)})
    assert feature_significance(frame, ["x"], CONFIG).iloc[0]["verdict"] == "insufficient data"


def test_small_effect_classification():
    assert classify_difference(0.001, 0.1, CONFIG) == "small"
    assert classify_difference(0.03, 0.9, CONFIG) == "small"
    assert classify_difference(0.001, -0.5, CONFIG) == "large"
    assert classify_difference(0.2, 0.9, CONFIG) == "noise"


def test_stat_sample_is_bounded():
    config = ReportConfig(stat_sample_size=50)
    result = feature_significance(_groups(3.0, n=200), ["x"], config).iloc[0]
    assert result["n_anomaly"] == 200 and result["n_anomaly_tested"] == 50 and result["n_normal_tested"] == 50


def test_segment_summary_matches_mart_and_names_empty_segments():
    fit = make_fit(200)
    mart = segment_summary_of(fit)
    mart.loc[mart["profitability_segment"] == "Medium", "anomaly_count"] = 0
    summary = segment_summary(mart)
    assert summary["anomaly_count"].sum() == mart["anomaly_count"].sum()
    assert segments_without_anomalies(summary) == ["Medium"]


def test_feature_comparison_passes_mart_numbers():
    fit = make_fit(200)
    mart = feature_comparison_of(fit)
    wide = feature_comparison(mart).set_index("feature_name")
    expected = fit.loc[fit["is_classification_anomaly"], "transaction_value_volatility"].median()
    assert wide.loc["transaction_value_volatility", "median_anomaly"] == pytest.approx(expected)
    assert wide.loc["transaction_value_volatility", "n_normal"] == int(
        (~fit["is_classification_anomaly"]).sum()
    )


def test_crosstab_association_detects_dependence():
    frame = pd.DataFrame(
        {
            "dimension": ["lifecycle_stage"] * 2 + ["seasonal_preference"] * 2,
            "dimension_value": ["New", AMP_STAGE, "Q4", "Even"],
            "anomaly_count": [100, 10, 50, 50],
            "normal_count": [100, 190, 450, 450],
            "record_count": [200, 200, 500, 500],
            "anomaly_rate": [0.5, 0.05, 0.1, 0.1],
        }
    )
    result = crosstab_association(frame, CONFIG).set_index("dimension")
    assert result.loc["lifecycle_stage", "verdict"] == "association"
    assert result.loc["lifecycle_stage", "highest_rate_value"] == "New"
    assert result.loc["seasonal_preference", "verdict"] == "noise"


def test_crosstab_without_anomalies_does_not_crash():
    fit = make_fit(100)
    fit["is_classification_anomaly"] = False
    result = crosstab_association(crosstabs_of(fit), CONFIG)
    assert set(result["verdict"]) == {"insufficient data"}


def test_value_realization_correlation():
    x = np.arange(100.0)
    fit = pd.DataFrame(
        {
            "comprehensive_customer_score": x,
            "total_revenue": 2 * x + 1,
            "is_classification_anomaly": [True] * 10 + [False] * 90,
        }
    )
    corr = {c.group: c for c in value_realization(fit, CONFIG)}
    assert corr["all"].pearson == pytest.approx(1.0)
    assert corr["all"].spearman == pytest.approx(1.0)
    assert corr["anomaly"].n == 10


def test_top_anomalies_order_and_limit():
    frame = pd.DataFrame(
        {
            "customer_record_id": ["a", "b", "c"],
            "anomaly_rank": [2, 1, 3],
            "retention_deviation": [0.3, -0.5, 0.2],
            "customer_name": ["A", "B", None],
            "profitability_segment": ["x", "y", "z"],
            "retention_probability": [0.9, 0.1, 0.8],
            "segment_avg_retention": [0.6, 0.6, 0.6],
        }
    )
    top = top_anomalies(frame, 2)
    assert top["customer_record_id"].tolist() == ["b", "a"]


def test_data_quality_counts_by_reason():
    issues = pd.DataFrame(
        {
            "source": ["customers"] * 3,
            "severity": ["rejected"] * 3,
            "column_name": ["retention_probability"] * 3,
            "reason": ["null", "null", "range"],
        }
    )
    rec = pd.DataFrame(
        {
            "source": ["customers"],
            "input_rows": [10],
            "clean_rows": [7],
            "rejected_rows": [3],
            "is_reconciled": [True],
        }
    )
    dq = data_quality_summary(rec, issues)
    assert dq.total_issues == 3 and dq.rejected_rows == 3
    assert dq.issues_by_reason.iloc[0]["reason"] == "null" and dq.issues_by_reason.iloc[0]["issue_count"] == 2


def test_as_bool_handles_nullable_and_text():
    assert as_bool(pd.Series([True, None, False], dtype="boolean")).tolist() == [True, False, False]
    assert as_bool(pd.Series(["true", "false", None])).tolist() == [True, False, False]


@pytest.mark.parametrize("mart, column, read", [
    ("segment_retention_summary", "anomaly_rate", "segment_summary"),
    ("anomaly_rule_lift", "odds_ratio", "rule_lift_table"),
    ("anomaly_crosstabs", "record_count", "crosstab_table"),
    ("classification_anomalies", "retention_deviation", "top_anomalies"),
])
def test_a_renamed_mart_column_stops_with_one_line_instead_of_an_empty_column(mart, column, read):
    """A mart whose contracted column was renamed (``<column>_v2``) is refused with one line naming the mart and
    the column; before, the column silently became all NaN."""
    import python_analysis.analysis as analysis
    from python_analysis.errors import SegfitError

    frame = make_marts()[mart]
    assert column in frame.columns
    renamed = frame.rename(columns={column: f"{column}_v2"})
    call = getattr(analysis, read)
    with pytest.raises(SegfitError) as stopped:
        call(renamed, 20) if read == "top_anomalies" else call(renamed)
    message = str(stopped.value)
    assert "\n" not in message
    assert f"marts.{mart} lacks {column}" in message and f"{column}_v2" not in message
    call(frame, 20) if read == "top_anomalies" else call(frame)  # the unrenamed mart reads
