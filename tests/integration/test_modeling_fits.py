"""Anomaly models fitted in full (every tree, repeated grouped CV, the grouped assessment, calibration) on synthetic
frames: planted leaks and signals, determinism. No warehouse, but each test fits the whole model set once or
more (seconds each), so they sit with the slow layer, not in `make test-fast`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from python_analysis.config import ReportConfig
from python_analysis.modeling import anomaly_clusters, anomaly_models

try:
    from tests.report_fixtures import make_fit
except ImportError:  # tests/ is not a package
    from report_fixtures import make_fit

CONFIG = ReportConfig()



def test_anomaly_models_flag_the_full_model_and_a_planted_leak():
    fit = make_fit(400)
    fit["comprehensive_customer_score"] = fit["is_classification_anomaly"].astype(float) * 10  # planted leak
    fit["txn_consistency_error"] = 0.1  # remove the synthetic behaviour signal
    fit["transaction_value_volatility"] = 1.0
    result = anomaly_models(fit, CONFIG)
    assert not result.skipped
    full, fair = result.models["full"], result.models["fair"]
    assert full.leakage_by_design and full.leakage
    assert fair.leakage and "comprehensive_customer_score" in fair.leakage[0]
    assert "retention_probability" not in fair.features and "abs_retention_deviation" not in fair.features
    assert "retention_probability" in full.features
    assert result.models["baseline"].features == ["profitability_segment"]
    assert set(result.models["behavioural"].importances["kind"]) == {"numeric"}
    assert len(result.scores) == len(fit)
    assert result.scores_source.startswith("fair model, out-of-fold")
    assert result.scores["anomaly_probability"].between(0, 1).all()


def test_anomaly_models_metrics_and_cv_folds():
    fit = make_fit(300)
    result = anomaly_models(fit, CONFIG)
    fair = result.models["fair"]
    assert fair.cv_folds == 5
    assert set(fair.in_sample) == {"n", "accuracy", "roc_auc", "recall_anomaly"}
    # the cross-validated figures are the repeated grouped CV's means (the single record-level split is gone)
    assert set(fair.cv) == {"n", "roc_auc", "pr_auc", "balanced_accuracy", "brier"}
    assert fair.cv["n"] == fair.cv_repeated.n_records == len(fit)
    assert fair.cv["roc_auc"] == pytest.approx(np.nanmean(fair.cv_repeated.scores["roc_auc"]))
    assert fair.top_rules["anomalies"].iloc[0] >= fair.top_rules["anomalies"].iloc[-1]


def test_cv_folds_shrink_and_skip_with_tiny_minority():
    fit = make_fit(60)
    fit["is_classification_anomaly"] = False
    fit.loc[[0, 1, 2], "is_classification_anomaly"] = True
    result = anomaly_models(fit, CONFIG)
    # folds group customers: as many as the customers holding the 3 anomaly records
    assert result.models["fair"].cv_folds == fit.loc[fit["is_classification_anomaly"], "customer_id"].nunique() == 2
    fit["is_classification_anomaly"] = False
    fit.loc[0, "is_classification_anomaly"] = True
    result = anomaly_models(fit, CONFIG)
    fair = result.models["fair"]
    assert fair.cv is None and "cross-validation skipped" in fair.cv_note
    assert result.scores_source.startswith("fair model, in-sample")


def test_models_are_deterministic():
    fit = make_fit(200)
    a = anomaly_models(fit, CONFIG)
    b = anomaly_models(fit, CONFIG)
    pd.testing.assert_frame_equal(a.scores, b.scores)
    c1 = anomaly_clusters(fit[fit["is_classification_anomaly"]], CONFIG)
    c2 = anomaly_clusters(fit[fit["is_classification_anomaly"]], CONFIG)
    pd.testing.assert_frame_equal(c1.assignments, c2.assignments)


def test_anomaly_models_report_repeated_grouped_cv():
    fit = make_fit(300)
    result = anomaly_models(fit, CONFIG)
    fair, base = result.models["fair"], result.models["baseline"]
    assert fair.cv_repeated is not None
    assert fair.cv_repeated.n_customers == fit["customer_id"].nunique()
    assert set(fair.cv_repeated.summary()) == {"roc_auc", "pr_auc", "balanced_accuracy", "brier"}
    assert len(fair.cv_repeated.scores["roc_auc"]) == CONFIG.cv_repeats * fair.cv_repeated.folds
    expected = np.mean(np.array(fair.cv_repeated.scores["roc_auc"]) - np.array(base.cv_repeated.scores["roc_auc"]))
    assert fair.vs_baseline["mean"] == pytest.approx(expected)


def test_behavioural_model_leaves_out_the_segment_defining_feature():
    from dataclasses import replace

    fit = make_fit(200)
    result = anomaly_models(fit, replace(CONFIG, segment_defining_feature="total_revenue"))
    assert "total_revenue" not in result.models["behavioural"].features
    assert "total_revenue" in result.models["fair"].features
    assert "total_revenue" in anomaly_models(fit, CONFIG).models["behavioural"].features


def test_grouped_assessment_of_the_fair_model():
    """The fair tree's grouped assessment: a planted leak is flagged by its single-feature out-of-fold AUC (and
    only in the models that use it), the planted signal tops the grouped permutation importance, the nested CV
    chooses a depth per outer fold, the paired bootstrap CI brackets the observed difference, and the
    written-back probability is the calibrated grouped out-of-fold one."""
    fit = make_fit(400)
    fit["comprehensive_customer_score"] = fit["is_classification_anomaly"].astype(float) * 10  # planted leak
    result = anomaly_models(fit, CONFIG)
    a = result.models["fair"].assessment
    assert a is not None and a["records"] == len(fit) and not a["sampled"]
    assert set(a["models"]) == {"fair", "baseline", "logistic_l2", "fair_nested", "fair_calibrated"}
    for scores in a["models"].values():
        assert set(scores) == {"roc_auc", "pr_auc", "balanced_accuracy", "brier"}
    assert sum(a["nested_cv"]["chosen"].values()) == a["folds"]
    for diff in a["roc_auc_minus_baseline"].values():
        assert diff["ci_low"] <= diff["difference"] <= diff["ci_high"]
    single = {r["feature"]: r["roc_auc"] for r in a["single_feature_auc"]}
    assert single["comprehensive_customer_score"] == 1.0
    assert single["retention_probability"] < 0.99 or "retention_probability" not in result.models["fair"].features
    assert any("comprehensive_customer_score alone" in f for f in result.models["fair"].leakage)
    assert not any("comprehensive_customer_score" in f for f in result.models["baseline"].leakage)
    assert "comprehensive_customer_score" in a["permutation_importance"][0]["features"]
    assert result.scores_source.startswith("fair model, out-of-fold (customer-grouped folds), calibrated")
    reliability = a["calibration"]["calibrated"]
    assert len(reliability["mean_predicted"]) == len(reliability["observed_rate"]) > 1
