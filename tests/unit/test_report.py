"""End-to-end: build_report + write_report on synthetic marts."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from python_analysis.config import ReportConfig
from python_analysis.report import CHART_NAMES, build_report, json_ready, write_report

try:
    from tests.report_fixtures import AMP_STAGE, BOLD_SEGMENT, SCRIPT_NAME, make_marts
except ImportError:  # tests/ is not a package
    from report_fixtures import AMP_STAGE, BOLD_SEGMENT, SCRIPT_NAME, make_marts

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONFIG = ReportConfig(cv_repeats=2, dpi=40)  # the checks here do not need 10 repeats or sharp charts


@pytest.fixture(scope="module")
def marts():
    return make_marts()


@pytest.fixture(scope="module")
def written(marts, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    report = build_report(
        marts,
        CONFIG,
        check_warnings=["expect <row_count> & more"],
        data_docs_href="data_docs/index.html?a=1&b=2",
        grain="latest",
    )
    paths = write_report(report, out, generated_at="2025-01-01T00:00:00Z")
    return report, out, paths


def test_every_chart_is_a_png(written):
    report, out, paths = written
    for name in CHART_NAMES:
        path = out / "charts" / f"{name}.png"
        assert path.exists(), name
        assert path.read_bytes()[:8] == PNG_MAGIC
        assert paths[f"charts/{name}.png"] == path
    assert {"report.md", "report.html", "metrics.json"} <= set(paths)


def test_metrics_equal_mart_numbers(written, marts):
    _, out, _ = written
    metrics = json.loads((out / "metrics.json").read_text())
    summary = marts["segment_retention_summary"].set_index("profitability_segment")
    by_segment = metrics["segments"]["by_segment"]
    assert set(by_segment) == set(summary.index)
    for segment, row in summary.iterrows():
        assert by_segment[segment]["anomaly_count"] == row["anomaly_count"]
        assert by_segment[segment]["record_count"] == row["record_count"]
        assert by_segment[segment]["anomaly_rate"] == pytest.approx(row["anomaly_rate"], rel=1e-5)
    assert metrics["sample"]["records"] == len(marts["customer_segment_fit"])
    assert metrics["sample"]["anomaly_records"] == len(marts["classification_anomalies"])
    assert metrics["grain"] == "latest"
    afc = marts["anomaly_feature_comparison"]
    row = afc[(afc.feature_name == "q4_share") & (afc.anomaly_group == "anomaly")].iloc[0]
    assert metrics["features"]["q4_share"]["median_anomaly"] == pytest.approx(row["median_value"], rel=1e-5)
    assert metrics["features"]["q4_share"]["verdict"] == "large"
    assert metrics["features"]["total_revenue"]["verdict"] == "noise"
    assert metrics["data_quality"]["total_issues"] == 3
    assert metrics["generated_at"] == "2025-01-01T00:00:00Z"
    assert metrics["leakage"]["full"], "the full model must be flagged as leaky"
    assert metrics["anomaly_models"]["models"]["full"]["leakage_by_design"] is True
    assert set(metrics["charts"]) == {f"{n}.png" for n in CHART_NAMES}
    top = metrics["top_anomalies"][0]
    assert top["customer_name"] == SCRIPT_NAME and top["anomaly_rank"] == 1


def test_metrics_top_level_keys_are_stable(written):
    report, _, _ = written
    assert sorted(report.metrics) == sorted(
        [
            "analysis_sample",
            "anomalies",
            "anomaly_models",
            "changes",
            "charts",
            "clustering",
            "config",
            "crosstabs",
            "data_profile",
            "data_quality",
            "features",
            "grain",
            "inference",
            "leakage",
            "notes",
            "recommendations",
            "rule_lift",
            "run",
            "sample",
            "schema_version",
            "segment_definition",
            "segment_tree",
            "segments",
            "stat_sample_size_per_group",
            "top_anomalies",
            "value_realization",
            "write_back",
        ]
    )


def test_html_escapes_data_values(written):
    _, out, _ = written
    page = (out / "report.html").read_text()
    assert SCRIPT_NAME not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert BOLD_SEGMENT not in page
    assert "&lt;b&gt;Gold&lt;/b&gt;" in page
    assert AMP_STAGE not in page
    assert "Growth &amp; Expansion" in page
    assert "expect &lt;row_count&gt; &amp; more" in page
    assert 'href="data_docs/index.html?a=1&amp;b=2"' in page
    assert page.count("data:image/png;base64,") == len(CHART_NAMES)
    assert '<img src="charts/' not in page  # self-contained


def test_markdown_has_tables_and_chart_links(written):
    _, out, _ = written
    md = (out / "report.md").read_text()
    for name in CHART_NAMES:
        assert f"(charts/{name}.png)" in md
    assert ("| Rank | Customer | Subsidiary | Segmentation date | Name | Segment | Retention | Segment mean | Deviation "
            "| Cluster | Conflicting copies |") in md
    assert SCRIPT_NAME not in md  # '<' escaped for markdown renderers
    assert "LEAKAGE" in md and "close to a threshold" in md


def test_write_back_frames(written, marts):
    report, _, _ = written
    clusters = report.anomaly_clusters
    assert list(clusters.columns) == ["customer_record_id", "cluster_id", "cluster_label"]
    assert len(clusters) == len(marts["classification_anomalies"])
    assert clusters["customer_record_id"].is_unique
    scores = report.anomaly_model_scores
    assert list(scores.columns) == ["customer_record_id", "anomaly_probability", "predicted_anomaly"]
    assert len(scores) == len(marts["customer_segment_fit"])
    assert scores["predicted_anomaly"].dtype == bool
    assert report.metrics["write_back"]["anomaly_model_scores_rows"] == len(scores)
    # small data: nothing is sampled, and the report says no sample
    assert report.metrics["analysis_sample"]["sampled"] is False
    assert report.metrics["analysis_sample"]["records"] == len(marts["customer_segment_fit"])
    assert "stratified sample of" not in report.markdown
    # the grouped assessment has its own key (it sat under cv_repeated_grouped.roc_auc_minus_baseline)
    models = report.metrics["anomaly_models"]
    assert models["assessment"] == json_ready(report.context.models.anomaly.models["fair"].assessment)
    assert models["assessment"]["records"] == len(marts["customer_segment_fit"])
    assert "grouped_assessment" not in json.dumps(models)


@pytest.fixture(scope="module")
def no_anomalies():
    marts = make_marts(threshold=0.95)
    assert marts["classification_anomalies"].empty
    return build_report(marts, CONFIG)


def test_no_anomalies_skips_trees_and_clusters(no_anomalies, tmp_path):
    report = no_anomalies
    paths = write_report(report, tmp_path)
    for name in ("decision_tree", "feature_importances", "clusters", "silhouette"):
        assert f"charts/{name}.png" not in paths
    assert "anomaly trees skipped" in report.markdown
    assert report.anomaly_model_scores.empty and report.anomaly_clusters.empty
    assert "NaN" not in (tmp_path / "metrics.json").read_text()


def test_stale_charts_are_removed(no_anomalies, tmp_path):
    (tmp_path / "charts").mkdir()
    (tmp_path / "charts" / "clusters.png").write_bytes(b"old")
    write_report(no_anomalies, tmp_path)
    assert not (tmp_path / "charts" / "clusters.png").exists()


def test_unsafe_data_docs_href_is_not_linked(written):
    report = dataclasses.replace(written[0])  # a shallow copy: the module's report stays as it is
    report.context = dataclasses.replace(report.context, checks_href="javascript:alert(1)")
    page = report.render()[0]
    assert 'href="javascript:' not in page and "javascript:alert(1) (link not rendered: unsafe scheme)" in page


def test_json_ready_rounds_and_nulls():
    assert json_ready({"a": float("nan"), "b": 1.23456789, "c": [float("inf")]}) == {
        "a": None,
        "b": 1.23457,
        "c": [None],
    }


def test_cluster_differences_alone_do_not_support_a_dimension():
    """Clusters are descriptive: they are named beside a verdict but never change it."""
    from types import SimpleNamespace

    from python_analysis.inference import InferenceResult, Verdict
    from python_analysis.verdicts import recommendations

    clustering = SimpleNamespace(
        skipped=False,
        profiles=pd.DataFrame({"cluster_id": [0, 1], "cluster_label": ["volatile", "steady"]}),
        terms={0: [{"family": "transaction stability", "direction": "high",
                    "feature": "transaction_value_volatility"}], 1: []},
    )
    evidence = {"input": "transaction_value_volatility", "contrast": "anomaly vs normal", "delta": 0.05,
                "magnitude": "negligible", "ci": [-0.1, 0.2], "q_value": 0.8, "test": "van Elteren",
                "customers": [40, 400]}

    def result(verdict):
        v = Verdict("transaction stability", verdict, "medium_effects_excluded", evidence, evidence, 6, 6, (), 0.2)
        return InferenceResult(primary=None, other=None, other_note="", verdicts=(v,))

    only_clusters = {r.dimension: r for r in recommendations(result("not_supported"), clustering)}
    stability = only_clusters["transaction stability"]
    assert stability.verdict == "not_supported" and not stability.supported
    assert "does not show that it separates anomalies from normal records" in stability.text
    assert stability.clusters == (0,)

    supported = {r.dimension: r for r in recommendations(result("supported"), clustering)}
    assert supported["transaction stability"].supported
    assert "cluster 0" in supported["transaction stability"].text
