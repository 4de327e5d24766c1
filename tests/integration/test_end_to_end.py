"""`segfit run` end to end on the demo and on the shared real extract: build -> checks -> report -> publish."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from importlib import metadata

import markupsafe
import numpy as np
import pandas as pd
import pytest

from python_analysis import cli, pipeline, steps, warehouse
from python_analysis.demo_data import generate_demo
from tests.conftest import SHARED_EXTRACT

CHARTS = ["retention_by_segment", "transaction_behaviour", "volatility", "seasonal_distribution", "value_realization", "anomaly_rate",
          "silhouette", "clusters", "decision_tree", "feature_importances"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    published, out = root / "segfit.duckdb", root / "report"
    code = cli.main(["run", "--warehouse", str(published), "--out", str(out)])
    assert code == 0
    return published, out


def test_run_writes_every_output(demo_run):
    _, out = demo_run
    for name in ("report.md", "report.html", "metrics.json"):
        assert (out / name).stat().st_size > 0
    for chart in CHARTS:
        data = (out / "charts" / f"{chart}.png").read_bytes()
        assert data.startswith(PNG_MAGIC), chart
    assert (out / "checks.html").is_file()
    assert not (out / "data_docs").exists()
    assert 'href="checks.html"' in (out / "report.html").read_text()


def test_metrics_agree_with_the_marts(demo_run):
    published, out = demo_run
    metrics = json.loads((out / "metrics.json").read_text())
    marts = warehouse.read_marts(published)
    fit, summary = marts["customer_segment_fit"], marts["segment_retention_summary"]
    assert metrics["sample"]["records"] == len(fit)
    assert metrics["sample"]["distinct_customers"] == fit["customer_id"].nunique()
    assert metrics["sample"]["anomaly_records"] == len(marts["classification_anomalies"])
    for row in summary.itertuples():
        reported = metrics["segments"]["by_segment"][row.profitability_segment]
        assert reported["anomaly_count"] == row.anomaly_count
        assert reported["above_count"] == row.above_count
        assert reported["record_count"] == row.record_count
    lift = marts["anomaly_rule_lift"].set_index("rule_name")
    assert {r["rule_name"] for r in metrics["rule_lift"]} == set(lift.index)


def test_report_counts_the_planted_anomalies(demo_run):
    _, out = demo_run
    metrics = json.loads((out / "metrics.json").read_text())
    planted = int(generate_demo().planted["is_planted_anomaly"].sum())
    assert metrics["sample"]["anomaly_records"] == planted
    assert f"{planted} of" in (out / "report.md").read_text()


def test_html_escapes_data_values(demo_run):
    _, out = demo_run
    page = (out / "report.html").read_text()
    name = '<script>alert("x")</script> & Co'  # a planted anomaly's customer_name in the demo seeds
    assert name not in page
    assert str(markupsafe.escape(name)) in page  # Jinja2's autoescape: quotes as &#34;
    assert "<script" not in page.lower()


def test_model_tables_are_written_back_to_the_published_warehouse(demo_run):
    published, _ = demo_run
    tables = warehouse.read_tables(published, {"clusters": "analysis.anomaly_clusters",
                                               "scores": "analysis.anomaly_model_scores",
                                               "anomalies": "marts.classification_anomalies",
                                               "fit": "marts.customer_segment_fit"})
    assert set(tables["clusters"]["customer_record_id"]) == set(tables["anomalies"]["customer_record_id"])
    assert set(tables["scores"]["customer_record_id"]) == set(tables["fit"]["customer_record_id"])
    assert tables["scores"]["anomaly_probability"].between(0, 1).all()


def test_the_report_is_deterministic(demo_run, tmp_path, monkeypatch):
    """Byte-identical apart from the run metadata: its start and end times are pinned here."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    published, _ = demo_run
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(published, copy)
    outputs = []
    for run in ("a", "b"):
        assert steps.report_published(copy, tmp_path / run) == 0
        metrics = json.loads((tmp_path / run / "metrics.json").read_text())
        metrics.pop("generated_at")
        outputs.append((metrics, (tmp_path / run / "report.md").read_bytes(),
                        (tmp_path / run / "report.html").read_bytes()))
    assert outputs[0] == outputs[1]


def test_error_level_check_failures_stop_before_the_report(tmp_path, monkeypatch, capsys):
    # the checks are told the flag should follow a 0.10 threshold; the marts follow 0.15: an error
    real = steps.check_config_for
    monkeypatch.setattr(steps, "check_config_for",
                        lambda fit, config: real(fit, config).__class__(anomaly_threshold=0.10))
    # 50,000 cells: the ~2,000-record customer_segment_fit (49 columns) and the 50,000 clean transactions
    # are larger than that, so they are validated in SQL over every row: the failure is found on that path
    monkeypatch.setenv("SEGFIT_CHECK_CHUNK_CELLS", "50000")
    published, out = tmp_path / "segfit.duckdb", tmp_path / "report"
    code = cli.main(["run", "--warehouse", str(published), "--out", str(out)])
    assert code == cli.EXIT_CHECKS_FAILED
    printed = capsys.readouterr().out
    assert "tables of at most 50,000 cells, larger tables in SQL over every row" in printed
    assert "ERROR customer_segment_fit" in printed and "customer_record_id=" in printed
    sql_line = next(line for line in printed.splitlines() if line.startswith("validated in SQL over every row"))
    assert "customer_segment_fit (" in sql_line and "int_transactions_validated (" in sql_line
    assert not (out / "report.md").exists()
    assert not published.exists()
    assert (tmp_path / "segfit.failed.duckdb").exists()
    # the failed run keeps its checks page, which shows the failure as failed
    page = (tmp_path / "report.failed" / "checks.html").read_text()
    assert "customer_record_id=" in page and ">failed<" in page


def test_anomalies_csv_matches_the_mart_row_for_row(demo_run):
    from python_analysis.report.tables import ANOMALY_COLUMNS

    published, out = demo_run
    exported = pd.read_csv(out / "anomalies.csv", dtype={"customer_id": str, "subsidiary_id": str,
                                                        "customer_record_id": str})
    tables = warehouse.read_tables(published, {"mart": "marts.classification_anomalies",
                                               "clusters": "analysis.anomaly_clusters"})
    mart = tables["mart"].sort_values("anomaly_rank").reset_index(drop=True)
    assert list(exported.columns) == list(ANOMALY_COLUMNS)
    assert len(exported) == len(mart) > 0
    assert exported["customer_record_id"].tolist() == mart["customer_record_id"].tolist()
    assert exported["anomaly_rank"].tolist() == mart["anomaly_rank"].tolist()
    assert exported["customer_id"].tolist() == mart["customer_id"].astype(str).tolist()
    assert exported["profitability_segment"].tolist() == mart["profitability_segment"].tolist()
    for column in ("retention_probability", "segment_avg_retention", "retention_deviation", "total_revenue"):
        assert np.allclose(exported[column], mart[column].astype(float), rtol=1e-12, equal_nan=True), column
    clusters = tables["clusters"].set_index("customer_record_id")["cluster_id"]
    assert exported["cluster_id"].tolist() == clusters.loc[mart["customer_record_id"]].tolist()


def test_run_on_the_shared_real_extract(tmp_path):
    if not SHARED_EXTRACT.exists():
        pytest.skip("../shared/data is not beside the checkout")
    published, out = tmp_path / "segfit.duckdb", tmp_path / "report"
    code = steps.run_all(pipeline.BuildOptions(customers=SHARED_EXTRACT), published, out)
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sample"]["records"] == 149
    assert metrics["grain"] == "all"
    for chart in ("transaction_behaviour", "clusters", "decision_tree"):
        assert (out / "charts" / f"{chart}.png").read_bytes().startswith(PNG_MAGIC)
    # run metadata: the input file measured here, the code's version and revision, the run's times
    run = metrics["run"]
    customers = next(i for i in run["inputs"] if i["source"] == "customers")
    assert customers["name"] == SHARED_EXTRACT.name
    assert customers["size_bytes"] == SHARED_EXTRACT.stat().st_size
    assert customers["sha256"] == hashlib.sha256(SHARED_EXTRACT.read_bytes()).hexdigest()
    assert (run["grain"], run["threshold"], run["threshold_mode"]) == ("all", 0.15, "absolute")
    assert run["segfit_version"] == metadata.version("segfit")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=warehouse.PROJECT_DIR, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert run["git_revision"].removesuffix("-dirty") == head
    assert run["started_at"] <= run["finished_at"] == metrics["generated_at"]
    assert customers["sha256"] in (out / "report.html").read_text()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium; skipped where it is not installed unless SEGFIT_REQUIRE_BROWSER=1 (CI sets it)."""
    from tests import browser as chromium

    missing = chromium.available()
    if missing:
        if os.environ.get("SEGFIT_REQUIRE_BROWSER") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    driver = chromium.open_browser(1024)
    yield chromium, driver
    driver.quit()


@pytest.mark.parametrize("page", ["report.html", "checks.html"])
def test_pages_fit_1024_px_resolve_their_anchors_and_make_no_network_request(demo_run, browser, page):
    chromium, driver = browser
    _, out = demo_run
    facts = chromium.visit(driver, out / page)
    assert facts.inner_width == 1024
    assert facts.scroll_width <= facts.inner_width, f"{page} scrolls sideways: {facts.scroll_width} px"
    assert facts.anchors and not facts.missing_anchors, facts.missing_anchors
    assert facts.network_requests == []
    if page == "report.html":
        sections = [s for s in ("summary", "segments", "anomalies", "data-quality", "appendix-models")]
        assert set(sections) <= set(facts.anchors)
