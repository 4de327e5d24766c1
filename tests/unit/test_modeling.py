"""Models: clustering, segment tree, anomaly trees and the leakage detector."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from python_analysis.config import ReportConfig
from python_analysis.modeling import (
    aggregate_importances,
    anomaly_clusters,
    anomaly_models,
    feature_matrix,
    leakage_flags,
    segment_tree,
)

try:
    from tests.report_fixtures import blobs, make_fit, threshold_frame
except ImportError:  # tests/ is not a package
    from report_fixtures import blobs, make_fit, threshold_frame

CONFIG = ReportConfig()


def test_two_blobs_give_k2():
    result = anomaly_clusters(blobs(), CONFIG)
    assert not result.skipped
    assert result.chosen_k == 2
    assert sorted(result.profiles["size"].tolist()) == [30, 30]
    # each blob is one cluster
    by_blob = result.assignments.assign(blob=result.assignments["customer_record_id"].str[:3])
    assert by_blob.groupby("blob")["cluster_id"].nunique().max() == 1
    assert set(result.k_scores["k"]) == {2, 3, 4, 5, 6}
    assert result.k_scores.set_index("k").loc[2, "silhouette"] > 0.9
    directions = {c: {t["direction"] for t in terms} for c, terms in result.terms.items()}
    assert sorted(map(tuple, directions.values())) == [("high",), ("low",)]
    assert result.profiles["cluster_label"].nunique() == 2


def test_fixed_k_is_used():
    result = anomaly_clusters(blobs(), ReportConfig(fixed_k=3))
    assert result.chosen_k == 3 and result.assignments["cluster_id"].nunique() == 3
    assert result.k_selection.startswith("fixed_k=3")


def test_clustering_skipped_with_fewer_than_three_anomalies():
    result = anomaly_clusters(blobs().head(2), CONFIG)
    assert result.skipped and "at least 3" in result.note
    assert result.assignments.empty


def test_k_is_capped_by_samples():
    result = anomaly_clusters(blobs(n_per=2), CONFIG)  # 4 records -> K at most 3
    assert not result.skipped
    assert result.k_scores["k"].max() == 3


def test_constant_and_all_null_features_do_not_crash():
    frame = blobs()
    frame["seasonality_std"] = 1.0  # constant
    frame["total_revenue"] = np.nan  # all null
    frame.loc[:5, "transaction_count"] = np.nan  # some null -> median
    result = anomaly_clusters(frame, CONFIG)
    assert not result.skipped and result.chosen_k >= 2
    assert len(result.assignments) == len(frame)
    assert "seasonality_std" not in result.features and "total_revenue" not in result.features
    notes = " ".join(result.feature_notes)
    assert "seasonality_std: constant" in notes and "total_revenue: all values missing" in notes
    assert "transaction_count: 6 missing value(s) imputed with the median" in notes


def test_all_features_constant_skips_clustering():
    frame = blobs()
    for column in frame.columns:
        if column not in (
            "customer_record_id",
            "profitability_segment",
            "lifecycle_stage",
            "seasonal_preference",
        ):
            frame[column] = 1.0
    result = anomaly_clusters(frame, CONFIG)
    assert result.skipped


def test_threshold_label_gives_importance_one_and_threshold_text():
    result = segment_tree(threshold_frame(), CONFIG)
    assert not result.skipped
    top = result.importances.iloc[0]
    assert top["feature"] == "total_revenue" and top["importance"] == 1.0
    assert result.threshold_feature == "total_revenue"
    assert "close to a threshold on total_revenue" in result.threshold_statement
    assert result.per_class["recall_in_sample"].min() == 1.0
    assert result.accuracy_cv > 0.95
    assert "total_revenue <=" in result.rules_text


def test_segment_tree_without_threshold_says_nothing():
    rng = np.random.default_rng(0)
    n = 400
    a, b = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    frame = pd.DataFrame(
        {"total_revenue": a, "transaction_count": b, "profitability_segment": np.where(a + b > 1, "X", "Y")}
    )
    result = segment_tree(frame, CONFIG)
    assert result.threshold_statement is None


def test_segment_tree_skipped_with_single_segment():
    frame = threshold_frame()
    frame["profitability_segment"] = "Only"
    assert segment_tree(frame, CONFIG).skipped


def test_leakage_is_flagged_by_out_of_fold_auc_not_by_importance_share():
    importances = pd.DataFrame(
        {"feature": ["leak", "other"], "kind": ["numeric", "numeric"], "importance": [0.95, 0.05]}
    )
    # a dominant feature is not evidence of leakage (issue 9: provenance replaces the importance heuristic)
    assert leakage_flags(importances, 0.7, 2, CONFIG) == []
    assert any("ROC-AUC" in flag for flag in leakage_flags(importances.iloc[::-1], 0.995, 2, CONFIG))


def test_trees_skipped_with_single_class():
    fit = make_fit(100)
    fit["is_classification_anomaly"] = False
    result = anomaly_models(fit, CONFIG)
    assert result.skipped and "single class" in result.note
    assert result.scores.empty and list(result.scores.columns) == [
        "customer_record_id",
        "anomaly_probability",
        "predicted_anomaly",
    ]


def test_feature_matrix_handles_constant_null_and_categories():
    frame = pd.DataFrame(
        {
            "a": [1.0, np.nan, 3.0],
            "b": [np.nan] * 3,
            "c": [2.0] * 3,
            "cat": ["x", None, "x"],
            "const_cat": ["k"] * 3,
        }
    )
    fm = feature_matrix(frame, ["a", "b", "c", "missing_col"], ["cat", "const_cat"], CONFIG)
    assert fm.columns == ["a", "cat=(missing)", "cat=x"]
    assert fm.X[1, 0] == 2.0  # median of 1 and 3
    assert set(fm.dropped) == {"b", "c", "missing_col", "const_cat"}
    agg = aggregate_importances(fm, np.array([0.2, 0.5, 0.3]))
    assert agg.set_index("feature").loc["cat", "importance"] == 0.8
    assert agg.set_index("feature").loc["cat", "kind"] == "categorical"


def test_repeated_cv_groups_the_copies_of_a_customer():
    """Noise features, every customer copied 3 times: record-level folds put copies on both sides and a deep
    tree memorises them; folds grouped by customer_id must not."""
    from sklearn.tree import DecisionTreeClassifier

    from python_analysis.validation import repeated_grouped_cv

    rng = np.random.default_rng(0)
    customers = 150
    X1 = rng.normal(size=(customers, 4))
    y1 = rng.random(customers) < 0.3
    X, y = np.repeat(X1, 3, axis=0), np.repeat(y1, 3)
    groups = np.repeat(np.arange(customers), 3).astype(str)
    tree = DecisionTreeClassifier(random_state=0)
    grouped = repeated_grouped_cv(tree, X, y, groups, folds=5, repeats=4, random_state=0, max_rows=10_000)
    by_record = repeated_grouped_cv(tree, X, y, np.arange(len(y)).astype(str), folds=5, repeats=4,
                                    random_state=0, max_rows=10_000)
    assert len(grouped.scores["roc_auc"]) == 20 and grouped.n_customers == customers
    assert grouped.summary()["roc_auc"]["mean"] < 0.65
    assert by_record.summary()["roc_auc"]["mean"] > 0.85
    assert grouped.summary()["roc_auc"]["sd"] > 0
    from python_analysis.validation import grouped_stratified_splits

    for train, test in grouped_stratified_splits(y, groups, 5, 0):
        assert not set(groups[train]) & set(groups[test])
        assert y[test].sum() > 0


def test_weighted_auc_matches_sklearn_with_sample_weights():
    from sklearn.metrics import roc_auc_score

    from python_analysis.assessment import weighted_auc

    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.2
    p = np.round(rng.random(300), 1)  # many ties
    w = rng.integers(0, 3, (4, 300)).astype(float)
    expected = [roc_auc_score(y, p, sample_weight=row) for row in w]
    np.testing.assert_allclose(weighted_auc(y, p, w), expected, rtol=1e-12)


def test_cluster_stability_columns_and_pruning():
    """Two blobs: K=2 wins most bootstraps with ARI near 1; the permuted-data null silhouette is far below the
    observed one; a clustering feature duplicated (up to a monotone transform) is pruned before KMeans; and the
    partition's ARI with the segment matches sklearn on the blob labels."""
    from sklearn.metrics import adjusted_rand_score

    frame = blobs()
    frame["seasonality_imbalance"] = frame["seasonality_std"] * 2 + 1  # |Spearman| 1 with seasonality_std
    result = anomaly_clusters(frame, CONFIG)
    ks = result.k_scores.set_index("k")
    assert ks.loc[2, "bootstrap_k_share"] >= 0.8 and ks.loc[2, "bootstrap_ari"] > 0.9
    assert ks.loc[2, "null_silhouette"] < ks.loc[2, "silhouette"] - 0.3
    assert "seasonality_imbalance" not in result.features
    assert any(n.startswith("seasonality_imbalance: dropped before KMeans") for n in result.feature_notes)
    labels = result.assignments.set_index("customer_record_id")["cluster_id"]
    segment = frame.set_index("customer_record_id")["profitability_segment"]
    expected = adjusted_rand_score(segment.loc[labels.index], labels)
    assert ks.loc[2, "ari_vs_segment"] == pytest.approx(expected)


def _volatile_clusters(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(anomalies, population): two anomaly groups, both far more volatile than the population (every record)."""
    rng = np.random.default_rng(seed)
    normal = pd.DataFrame({"customer_record_id": [f"N{i:04d}" for i in range(600)],
                           "transaction_value_volatility": rng.normal(0.5, 0.1, 600),
                           "transaction_count": rng.normal(20.0, 5.0, 600)})
    groups = []
    for name, volatility, count in (("A", 2.0, 30.0), ("B", 1.5, 10.0)):
        groups.append(pd.DataFrame({"customer_record_id": [f"{name}{i:03d}" for i in range(30)],
                                    "transaction_value_volatility": rng.normal(volatility, 0.05, 30),
                                    "transaction_count": rng.normal(count, 1.0, 30)}))
    anomalies = pd.concat(groups, ignore_index=True)
    for frame in (normal, anomalies):
        frame["profitability_segment"], frame["lifecycle_stage"], frame["seasonal_preference"] = "S", "New", "Q4"
    return anomalies, pd.concat([normal, anomalies], ignore_index=True)


def test_cluster_labels_are_named_against_the_population():
    """Against each other, the less volatile group is 'low volatility'; against every record both groups are
    far above the typical customer, so both labels say 'high volatility' (gap from pandas: (cluster median -
    population median) / population SD)."""
    anomalies, population = _volatile_clusters()
    config = ReportConfig(fixed_k=2)
    result = anomaly_clusters(anomalies, config, population=population)
    assert result.label_reference.startswith("population")
    assignments = result.assignments.assign(group=result.assignments["customer_record_id"].str[0])
    assert assignments.groupby("group")["cluster_id"].nunique().max() == 1  # each group is one cluster
    labels = dict(zip(result.profiles["cluster_id"], result.profiles["cluster_label"], strict=True))
    vol = population["transaction_value_volatility"]
    for group, members in assignments.groupby("group"):
        cluster = int(members["cluster_id"].iloc[0])
        inside = anomalies.set_index("customer_record_id").loc[members["customer_record_id"],
                                                               "transaction_value_volatility"]
        expected = (inside.median() - vol.median()) / vol.std(ddof=1)
        assert expected > config.label_min_z_gap
        assert "high volatility" in labels[cluster] and "low volatility" not in labels[cluster], (group, labels)
        gap = result.z_gaps.set_index("cluster_id").loc[cluster, "transaction_value_volatility"]
        assert gap == pytest.approx(expected, rel=1e-5)
    # the old naming, against the other cluster, calls one of these volatile groups "low volatility"
    relative = anomaly_clusters(anomalies, config)
    assert relative.label_reference == "other clusters"
    assert any("low volatility" in label for label in relative.profiles["cluster_label"])


def test_cluster_stability_survives_a_silhouette_subsample_with_one_cluster():
    """800 records in one blob and 3 far away: K=2 splits off the 3, and the 500-record silhouette subsample of a
    bootstrap usually holds none of them, i.e. one cluster. That crashed `segfit report` at 20k records with
    sklearn's "Number of labels is 1"; such a bootstrap now just has no silhouette for that K."""
    frame = blobs(n_per=800)
    frame = pd.concat([frame.iloc[:800], frame.iloc[800:803]], ignore_index=True)
    result = anomaly_clusters(frame, CONFIG)
    assert len(result.assignments) == 803
    assert result.k_scores["bootstrap_k_share"].sum() <= 1.0 + 1e-9


def test_tree_models_impute_inside_each_fit():
    """The trees' matrix keeps missing values; every tree is a pipeline whose imputer learns the median of its
    own training records, so the repeated grouped CV equals a per-fold SimpleImputer + tree computed here."""
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import roc_auc_score
    from sklearn.tree import DecisionTreeClassifier

    from python_analysis.modeling import _tree, model_matrix
    from python_analysis.validation import grouped_stratified_splits, repeated_grouped_cv

    fit = make_fit(300)
    fit.loc[fit.index % 3 == 0, "transaction_value_volatility"] = np.nan
    fm = model_matrix(fit, CONFIG).select(["transaction_value_volatility", "txn_consistency_error"])
    assert np.isnan(fm.X[:, 0]).sum() == (fit.index % 3 == 0).sum()  # not imputed over all rows
    assert any("imputed inside each fit" in note for note in fm.notes)
    y = fit["is_classification_anomaly"].to_numpy(dtype=bool)
    groups = pd.factorize(fit["customer_id"], sort=True)[0]
    cv = repeated_grouped_cv(_tree(CONFIG, CONFIG.class_weight), fm.X, y, groups, folds=5, repeats=1,
                             random_state=CONFIG.random_state, max_rows=10_000)
    expected = []
    for train, test in grouped_stratified_splits(y, groups, 5, CONFIG.random_state):
        imputer = SimpleImputer(strategy="median").fit(fm.X[train])
        assert imputer.statistics_[0] == pytest.approx(np.nanmedian(fm.X[train, 0]))
        tree = DecisionTreeClassifier(max_depth=CONFIG.max_depth, min_samples_leaf=CONFIG.min_samples_leaf,
                                      class_weight=CONFIG.class_weight, random_state=CONFIG.random_state)
        tree.fit(imputer.transform(fm.X[train]), y[train])
        expected.append(roc_auc_score(y[test], tree.predict_proba(imputer.transform(fm.X[test]))[:, 1]))
    np.testing.assert_allclose(cv.scores["roc_auc"], expected, rtol=1e-12)
