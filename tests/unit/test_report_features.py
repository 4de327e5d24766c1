"""The report's reader-facing features on synthetic marts: number formats, the executive summary, segment
order, anomalies by customer, grouped data-quality issues, the changes section, anchors and escaping."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from python_analysis.config import ReportConfig
from python_analysis.report import build_report, formats, write_report
from python_analysis.report.tables import ANOMALY_COLUMNS, issues_by_reason, reason_kind

try:
    from tests.report_fixtures import BOLD_SEGMENT, make_marts
except ImportError:  # tests/ is not a package
    from report_fixtures import BOLD_SEGMENT, make_marts

FAST = ReportConfig(cv_repeats=2, dpi=40)


def changes_mart() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["C9", "C1", "C5"],
        "change_type": ["stopped_being_anomaly", "became_anomaly", "new_anomaly"],
        "previous_segment": ["Medium", "Medium", None],
        "current_segment": ["Medium", "Medium", "Medium"],
        "previous_retention": [0.9, 0.5, None],
        "current_retention": [0.55, 0.95, 0.1],
        "was_anomaly": [True, False, None],
        "is_anomaly": [False, True, True],
        "changed_at": pd.Timestamp("2025-01-01"),
    })


@pytest.fixture(scope="module")
def marts():
    marts = make_marts()
    fit = marts["customer_segment_fit"]
    # two conflicting copies of one anomaly customer's key
    first = marts["classification_anomalies"].iloc[0]
    marts["duplicate_customer_keys"] = pd.DataFrame({
        "customer_id": [first["customer_id"], "C00001"], "subsidiary_id": [first["subsidiary_id"], "S1"],
        "record_count": [2, 2], "is_conflicting": [True, False]})
    marts["customer_fit_changes"] = changes_mart()
    assert len(fit)
    return marts


@pytest.fixture(scope="module")
def report(marts, tmp_path_factory):
    out = tmp_path_factory.mktemp("features")
    result = build_report(marts, FAST, data_docs_href="checks.html")
    write_report(result, out, generated_at="2025-01-01T00:00:00Z")
    return result, out


def test_one_number_format_per_kind():
    assert formats.p(5.56e-81) == "< 0.001"
    assert formats.p(0.04213) == "0.042"
    assert formats.num(0.31543624161073824) == "0.315"
    assert formats.num(0.895) == "0.895"
    assert formats.num(1234.56) == "1,235"
    assert formats.num(12.345) == "12.3"
    assert formats.pct(0.0741) == "7.4%"
    assert formats.signed(0.9) == "+0.90"
    assert formats.count(1800.0) == "1,800"
    assert formats.p(float("nan")) == formats.num(None) == "n/a"


def test_the_executive_summary_opens_the_report_with_counts_of_customers_and_records(report, marts):
    result, out = report
    anomalies = marts["classification_anomalies"]
    fit = marts["customer_segment_fit"]
    md = (out / "report.md").read_text()
    first_section = md.split("\n## ")[1]
    assert first_section.startswith("1. Executive summary")
    for heading in ("What we found", "How sure we are", "What to do next"):
        assert heading in first_section
    expected = (f"{anomalies['customer_id'].nunique():,} of {fit['customer_id'].nunique():,} customers "
                f"({anomalies['customer_id'].nunique() / fit['customer_id'].nunique():.1%}) do not fit their segment: "
                f"{len(anomalies):,} of {len(fit):,} records")
    assert expected in first_section
    top = anomalies.assign(a=anomalies["retention_deviation"].abs()).sort_values("anomaly_rank")
    assert f"Look first at customers {top['customer_id'].iloc[0]} (" in first_section
    assert "Appendix" in md.split("\n## ")[-2]  # the model detail is in an appendix at the end


def test_segments_are_in_value_order_everywhere(report, marts):
    result, out = report
    fit = marts["customer_segment_fit"]
    expected = fit.groupby("profitability_segment")["total_revenue"].median().sort_values().index.tolist()
    assert list(result.context.segment_order) == expected
    assert result.context.summary["profitability_segment"].tolist() == expected
    assert result.metrics["segments"]["order"] == expected
    table = (out / "report.md").read_text().split("Table: Customers, records and anomalies per segment")[1]
    positions = [table.index(s.replace("<", "\\<").replace(">", "\\>")) for s in expected]
    assert positions == sorted(positions)


def test_anomalies_csv_has_every_anomaly_record_in_rank_order_with_conflict_flags(report, marts):
    _, out = report
    mart = marts["classification_anomalies"].sort_values("anomaly_rank")
    exported = pd.read_csv(out / "anomalies.csv", dtype={"customer_id": str, "subsidiary_id": str})
    assert list(exported.columns) == list(ANOMALY_COLUMNS)
    assert exported["customer_record_id"].tolist() == mart["customer_record_id"].tolist()
    assert np.allclose(exported["retention_deviation"], mart["retention_deviation"])
    first = mart.iloc[0]
    same_key = (exported["customer_id"] == first["customer_id"]) & (exported["subsidiary_id"] == first["subsidiary_id"])
    assert exported.loc[same_key, "conflicting_copies"].all()
    assert not exported.loc[~same_key, "conflicting_copies"].any()
    per_customer = mart.groupby("customer_id").size()
    assert (exported["records_of_customer"] == exported["customer_id"].map(per_customer)).all()


def test_data_quality_issues_are_grouped_by_reason_rejected_first():
    rows = [("customers", 10 + i, f"K{i}", "customer_id, subsidiary_id",
             f"duplicate business key (customer_id, subsidiary_id), first seen at data row {i}", "warning")
            for i in range(5)]
    rows += [("customers", 3, "K9", "retention_probability", "retention_probability is null or blank", "rejected")]
    issues = pd.DataFrame(rows, columns=["source", "source_row_number", "row_key", "column_name", "reason", "severity"])
    from python_analysis.analysis import data_quality_summary

    grouped = issues_by_reason(issues, data_quality_summary(None, issues))
    assert grouped["issue_count"].tolist() == [1, 5]
    assert grouped["severity"].tolist() == ["rejected", "warning"]
    assert grouped.loc[1, "reason"] == "duplicate business key (customer_id, subsidiary_id)"
    assert grouped.loc[1, "example_keys"] == "K0, K1, K2, …"
    assert reason_kind("quarter counts sum to a different number than transaction_count (12)") == \
        "quarter counts sum to a different number than transaction_count"


def test_changes_since_the_last_build_are_counted(report):
    _, out = report
    md = (out / "report.md").read_text()
    section = md.split("## 7. Changes since the last build")[1].split("\n## ")[0]
    assert "2 customers became anomalies and 1 stopped being anomalies" in section
    assert section.index("| C1 | became_anomaly") < section.index("| C9 | stopped_being_anomaly")


def test_every_contents_link_has_its_anchor_and_data_is_escaped(report):
    _, out = report
    page = (out / "report.html").read_text()
    links = re.findall(r'href="#([^"]+)"', page)
    ids = set(re.findall(r'id="([^"]+)"', page))
    assert len(links) >= 10 and set(links) <= ids
    assert BOLD_SEGMENT not in page and "&lt;b&gt;Gold&lt;/b&gt;" in page
    assert 'class="table-box"' in page
    assert re.search(r"\d\.\d{2}e-\d", page) is None  # no p-value in scientific notation


def test_the_checks_link_and_the_csv_links_are_in_the_data_quality_section(report):
    _, out = report
    page = (out / "report.html").read_text()
    section = page.split('id="data-quality"')[1].split("</section>")[0]
    assert 'href="checks.html"' in section and 'href="data_quality_issues.csv"' in section
    assert (out / "data_quality_issues.csv").read_text().count("\n") == 1 + len(make_marts()["data_quality_issues"])


def test_run_metadata_comes_from_build_metadata_and_reaches_the_header(tmp_path, monkeypatch):
    from python_analysis.report.runinfo import RunInfo

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    meta = pd.DataFrame({
        "source": ["transactions", "customers"], "input_label": ["/in/t.csv", "/in/c.csv"],
        "file_name": ["t.csv", "c.csv"], "file_size_bytes": [10, 2048], "file_sha256": ["ab" * 32, "cd" * 32],
        "customer_grain": ["latest", "latest"], "anomaly_threshold": [0.1, 0.1],
        "anomaly_threshold_mode": ["relative", "relative"], "dbt_version": ["1.11.16"] * 2,
        "built_at": [pd.Timestamp("2025-02-03 04:05:06")] * 2})
    run = RunInfo.from_marts({"build_metadata": meta}, grain="all")
    assert (run.grain, run.threshold, run.threshold_mode) == ("latest", 0.1, "relative")
    assert [(i.source, i.name, i.size_bytes, i.sha256) for i in run.inputs] == [
        ("customers", "c.csv", 2048, "cd" * 32), ("transactions", "t.csv", 10, "ab" * 32)]
    assert run.started_at == "2023-11-14T22:13:20Z"
    line = run.finished("2023-11-14T22:15:00Z").line()
    assert "c.csv (2,048 bytes, SHA-256 " + "cd" * 32 + ")" in line and "finished 2023-11-14T22:15:00Z" in line
    assert "anomaly threshold 0.1 (relative)" in line


def test_the_model_sentence_says_when_the_segment_alone_does_as_well():
    from python_analysis.report import text

    assert "no better than 0.895 from the segment alone" in text.model_sentence(0.89, 0.895)
    assert "ROC-AUC 0.977 against 0.526" in text.model_sentence(0.977, 0.526)


def test_the_reliability_curve_of_the_written_back_probability_is_in_appendix_a(report, marts):
    """The chart and its sentence come from the written-back probability against each record's flag; the
    expected numbers are sklearn's calibration_curve and numpy's Brier on the exported scores."""
    from sklearn.calibration import calibration_curve

    result, out = report
    fit = marts["customer_segment_fit"]
    scores = result.anomaly_model_scores.merge(fit[["customer_record_id", "is_classification_anomaly"]],
                                               on="customer_record_id", validate="one_to_one")
    y = scores["is_classification_anomaly"].astype(bool).to_numpy()
    p = scores["anomaly_probability"].to_numpy()
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    gaps = np.abs(observed - predicted)
    assert (out / "charts" / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    appendix = (out / "report.md").read_text().split("Appendix: Model detail")[-1]
    assert "(charts/reliability.png)" in appendix
    assert (f"over {len(gaps)} bins of predicted probability ({len(y):,} records, out-of-fold): the observed anomaly "
            f"share differs from the mean prediction by {100 * gaps.mean():.1f} percentage points on average and at "
            f"most {100 * gaps.max():.1f}; Brier score {formats.num(np.mean((p - y) ** 2))}.") in appendix


def test_reliability_curve_counts_and_gaps_on_planted_calibration():
    """Perfectly calibrated predictions (y drawn with probability p) lie near the diagonal; squared ones
    (y drawn with probability p, predicted p**2) lie above it. Bin sizes from pandas' own grouping."""
    from python_analysis import plots

    rng = np.random.default_rng(0)
    p = np.repeat(np.linspace(0.05, 0.95, 10), 2000)
    y = rng.random(len(p)) < p
    calibrated = plots.reliability_of(y, p)
    assert calibrated.records_per_bin == tuple(pd.Series(p).value_counts().sort_index().tolist())
    assert np.allclose(calibrated.observed_rate, pd.Series(y).groupby(p).mean().to_numpy())
    assert max(abs(o - q) for o, q in zip(calibrated.observed_rate, calibrated.mean_predicted, strict=True)) < 0.05
    assert calibrated.brier == pytest.approx(np.mean((p - y) ** 2))
    # the report's own Brier score (it saves sklearn's input copies) is sklearn's, to the last bit
    from sklearn.metrics import brier_score_loss

    assert calibrated.brier == brier_score_loss(y, p)
    squared = plots.reliability_of(y, p ** 2)
    assert all(o > q + 0.02 for o, q in zip(squared.observed_rate, squared.mean_predicted, strict=True)
               if 0.1 < q < 0.8)


def test_the_cluster_stability_sentence_follows_the_bootstrap_share_and_the_ari_to_the_segment():
    from python_analysis.report import text

    k_scores = pd.DataFrame({"k": [2, 3], "bootstrap_k_share": [0.8, 0.2], "bootstrap_ari": [0.91, 0.5],
                             "ari_vs_segment": [0.72, 0.3], "stability_records": [120, 120]})
    composition = pd.DataFrame({"dimension": "profitability_segment", "cluster_id": [0, 0, 1, 1],
                                "value": ["Basic", "Premium", "Basic", "Premium"], "share": [0.9, 0.1, 0.25, 0.75]})
    sentence = text.cluster_stability(k_scores, 2, composition)
    assert sentence.startswith("Cluster stability: K = 2 wins in 80% of the bootstrap resamples of 120 anomaly "
                               "records, so K is stable; a resample's partition agrees with the full-data one at "
                               "mean ARI 0.91.")
    assert ("mostly rediscovers the segments (ARI 0.72 against the segment); cluster 0 is mostly Basic (90%), "
            "cluster 1 mostly Premium (75%)") in sentence
    unstable = text.cluster_stability(k_scores, 3, composition)
    assert "K = 3 wins in 20%" in unstable and "(K = 2 wins most often, in 80%), so no K is stable" in unstable
    assert "partly follows the segment (ARI 0.3 against the segment)" in unstable
    assert text.cluster_stability(k_scores.drop(columns="bootstrap_k_share"), 2, composition) is None


def test_the_clusters_section_states_the_stability_of_the_chosen_k(report):
    result, out = report
    c = result.context.models.clustering
    row = c.k_scores.set_index("k").loc[c.chosen_k]
    section = next(part for part in (out / "report.md").read_text().split("\n## ")
                   if part.split("\n")[0].endswith("Clusters of anomaly records"))
    assert f"Cluster stability: K = {c.chosen_k} wins in {row['bootstrap_k_share']:.0%} of the bootstrap" in section
