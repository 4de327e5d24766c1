"""Whole reports built more than once on synthetic marts: byte-identical output, and the few-anomalies variant
(no warehouse; slow layer because each builds one or two full reports, model fits included).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from python_analysis.config import ReportConfig
from python_analysis.report import build_report, write_report

try:
    from tests.report_fixtures import make_marts
except ImportError:  # tests/ is not a package
    from report_fixtures import make_marts

CONFIG = ReportConfig(cv_repeats=2, dpi=40)  # the checks here do not need 10 repeats or sharp charts


@pytest.fixture(scope="module")
def marts():
    return make_marts()


def test_build_and_write_twice_is_byte_identical(marts, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    outputs = []
    for run in ("a", "b"):
        report = build_report(marts, CONFIG, check_warnings=["w"], data_docs_href="x.html")
        write_report(report, tmp_path / run)
        outputs.append(
            {
                p.relative_to(tmp_path / run): p.read_bytes()
                for p in (tmp_path / run).rglob("*")
                if p.is_file()
            }
        )
    assert outputs[0].keys() == outputs[1].keys()
    for key in outputs[0]:
        assert outputs[0][key] == outputs[1][key], key
    metrics = json.loads(outputs[0][Path("metrics.json")])
    assert metrics["generated_at"] == "2023-11-14T22:13:20Z"


def test_few_anomalies_skip_clustering_with_note(tmp_path):
    marts = make_marts(threshold=0.45)
    n_anomalies = len(marts["classification_anomalies"])
    assert 1 <= n_anomalies < 3
    report = build_report(marts, CONFIG)
    paths = write_report(report, tmp_path)
    assert "charts/clusters.png" not in paths and "charts/silhouette.png" not in paths
    assert not (tmp_path / "charts" / "clusters.png").exists()
    assert "clustering skipped" in report.markdown
    assert report.metrics["clustering"]["skipped"] is True
    assert report.anomaly_clusters.empty
    assert list(report.anomaly_clusters.columns) == ["customer_record_id", "cluster_id", "cluster_label"]
