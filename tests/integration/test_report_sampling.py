"""The report on large data: the heavy statistics run on the stated sample, metrics.json and the report say
which figures come from it and of what size, and every record is still scored. Synthetic marts (no dbt build);
a small threshold stands in for "large". About 15 s."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from python_analysis.config import ReportConfig
from python_analysis.report import RunInfo, build_report

try:
    from tests.report_fixtures import make_marts
except ImportError:  # tests/ is not a package
    from report_fixtures import make_marts

CONFIG = ReportConfig(cv_repeats=2, sampled_cv_repeats=1, dpi=40, analysis_sample_threshold=600,
                      analysis_sample_size=300)


@pytest.fixture(scope="module")
def sampled():
    marts = make_marts(n=1200, seed=5)
    # rows not in customer_record_id order (as in a warehouse, read in source_row_number order): the written-back
    # scores are sorted by id, so anything carried along with them must be reordered with them
    fit = marts["customer_segment_fit"]
    marts["customer_segment_fit"] = fit.sample(frac=1.0, random_state=11).reset_index(drop=True)
    # built as segfit builds it (the helper process on: the default), with its log kept for the helper's test
    with _worker_messages() as messages:
        report = build_report(marts, CONFIG, run=RunInfo.from_marts(marts, grain="all", started_at=STARTED))
    HELPER_LOG[:] = messages
    return marts, report


STARTED = "2026-01-01T00:00:00Z"  # the same run metadata for every report built here
HELPER_LOG: list[str] = []


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _worker_messages() -> Iterator[list[str]]:
    """The worker logger's messages (DEBUG and up) while the block runs; the logger is restored after it. A
    handler on the logger itself, not caplog's root handler: the CLI's logging setup stops propagation."""
    handler = _Messages()
    logger = logging.getLogger("python_analysis.worker")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_metrics_and_report_state_the_sample(sampled):
    marts, report = sampled
    fit = marts["customer_segment_fit"]
    stated = report.metrics["analysis_sample"]
    chosen = fit.iloc[report.context.sample.positions]
    assert stated["sampled"] is True
    assert stated["records"] == len(chosen) < len(fit) == stated["population_records"]
    assert stated["customers"] == chosen["customer_id"].nunique()
    assert stated["anomaly_customers"] == chosen.loc[chosen["is_classification_anomaly"], "customer_id"].nunique()
    # the sampled parts ran on the sample, the descriptive ones on every record
    assert report.context.inference.primary.records == len(chosen)
    assert report.metrics["anomaly_models"]["n_records"] == len(chosen)
    assert report.metrics["sample"]["records"] == len(fit)
    assert report.metrics["data_profile"]["records"] == len(fit)
    sentence = f"stratified sample of {len(chosen):,} records of {chosen['customer_id'].nunique():,} whole customers"
    assert sentence in report.markdown and sentence in report.html


def test_every_record_is_scored(sampled):
    marts, report = sampled
    fit = marts["customer_segment_fit"]
    scores = report.anomaly_model_scores
    assert sorted(scores["customer_record_id"]) == sorted(fit["customer_record_id"])
    p = scores["anomaly_probability"].to_numpy()
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert "scored by one calibrated fair tree fitted on the sample" in report.metrics["anomaly_models"]["scores_source"]
    # the records outside the sample are scored by a model: their probabilities rank the anomalies
    from sklearn.metrics import roc_auc_score
    outside = ~scores["customer_record_id"].isin(fit["customer_record_id"].iloc[report.context.sample.positions])
    flags = scores.merge(fit[["customer_record_id", "is_classification_anomaly"]], on="customer_record_id")
    assert roc_auc_score(flags.loc[outside.to_numpy(), "is_classification_anomaly"], p[outside.to_numpy()]) > 0.6


def test_the_sampled_cv_uses_the_stated_repeats(sampled):
    """When sampled, the repeated grouped CV runs ``sampled_cv_repeats`` times, and the report says so."""
    _, report = sampled
    assert report.metrics["analysis_sample"]["cv_repeats"] == CONFIG.sampled_cv_repeats == 1
    for name, model in report.context.models.anomaly.models.items():
        if model.cv_repeated is not None:
            assert model.cv_repeated.repeats == CONFIG.sampled_cv_repeats, name
    stated = f"uses 1 repeat ({CONFIG.cv_repeats} on data at or below the threshold)"
    assert stated in report.markdown and stated in report.html


def test_the_reliability_curve_pairs_each_score_with_its_records_flag(sampled):
    """The written-back reliability curve (from the flags carried with the scores) equals the curve computed
    here by joining the scores to the fit mart's flags on customer_record_id."""
    from python_analysis import plots
    from python_analysis.report.figures import written_back_reliability

    marts, report = sampled
    fit = marts["customer_segment_fit"]
    scores = report.anomaly_model_scores
    joined = scores.merge(fit[["customer_record_id", "is_classification_anomaly"]], on="customer_record_id",
                          how="left", validate="one_to_one")
    assert len(joined) == len(scores) and joined["is_classification_anomaly"].notna().all()
    expected = plots.reliability_of(joined["is_classification_anomaly"].to_numpy(dtype=bool),
                                    joined["anomaly_probability"].to_numpy(dtype=float))
    assert written_back_reliability(report.context) == expected


def test_the_helper_process_gives_the_serial_report(sampled, monkeypatch):
    """On sampled data the within-segment tests, the clusters, the grouped assessment, the calibrated folds and
    the CSV exports run in the report's helper process (python_analysis.worker); the report is the serial one
    (SEGFIT_REPORT_HELPER=0), figure for figure: metrics.json, the text, every chart's PNG, the CSV files and both
    written-back tables. About 10 s."""

    from python_analysis import worker

    marts, parallel = sampled
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: the report runs no helper process")
    ran = [message for message in HELPER_LOG if "in the helper process" in message]
    for part in ("the within-segment tests", "the anomaly clusters", "the grouped assessment", "the calibrated folds",
                 "the CSV exports"):
        assert any(message.startswith(part) for message in ran), (part, HELPER_LOG)
    monkeypatch.setenv(worker.HELPER_ENV, "0")
    serial = build_report(marts, CONFIG, run=RunInfo.from_marts(marts, grain="all", started_at=STARTED))
    assert parallel.metrics == serial.metrics
    assert parallel.chart_png == serial.chart_png
    assert parallel.render() == serial.render()
    # the CSV text formatted in the helper is pandas' CSV of the exported frames, as the serial report has it
    assert parallel.csv_text == serial.csv_text
    assert parallel.csv_text["anomalies.csv"] == parallel.context.anomalies.to_csv(
        index=False, lineterminator="\n", date_format="%Y-%m-%d %H:%M:%S")
    for name in ("anomaly_clusters", "anomaly_model_scores"):
        pd.testing.assert_frame_equal(getattr(parallel, name), getattr(serial, name), check_exact=True)


def test_the_copy_that_receives_the_analysis_tables_is_made_by_the_helper(demo_warehouse, tmp_path):
    """`segfit report` on large data: the helper process copies the warehouse file while the report reads and
    fits (``steps.report_from(copy_to=)``), and the copy is byte for byte the file read. The demo build, with
    a threshold that makes it "large". About 10 s."""
    import filecmp
    import shutil

    from python_analysis import steps

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: the report runs no helper process")
    source, target = tmp_path / "read.duckdb", tmp_path / "copy.duckdb"
    shutil.copyfile(demo_warehouse, source)
    with _worker_messages() as messages:
        result = steps.report_from(source, tmp_path / "out", CONFIG, None, "all", copy_to=target)
    assert result.metrics["analysis_sample"]["sampled"] is True
    assert filecmp.cmp(source, target, shallow=False)
    assert any(m.startswith("the warehouse copy") and "in the helper process" in m for m in messages), messages


def test_a_large_report_reads_the_fit_mart_in_bounded_memory(demo_warehouse, tmp_path, monkeypatch):
    """`segfit report` on large data (#11) never reads the whole fit mart into pandas: of every record it reads
    a few columns at a time, the sample's whole rows, and bounded chunks for the scores; and the report is the one
    the whole-mart read gives (metrics apart from the run, charts, CSVs, both analysis tables). The demo build,
    with a threshold that makes it "large" and the read sizes scaled down to it. About 25 s."""
    import shutil

    from python_analysis import steps, warehouse
    from python_analysis.warehouse import population, reading

    source = tmp_path / "read.duckdb"
    shutil.copyfile(demo_warehouse, source)
    n = warehouse.count_rows(source, "marts.customer_segment_fit")
    width = len(warehouse.read_tables(source, {"fit": "marts.customer_segment_fit"})["fit"].columns)
    monkeypatch.delenv("SEGFIT_BOUNDED_READ_RECORDS", raising=False)
    monkeypatch.setattr(population, "BOUNDED_READ_RECORDS", n // 2)  # "far above the threshold"
    monkeypatch.setattr(population, "CHUNK_ROWS", 500)
    monkeypatch.setattr(population, "READ_BUDGET_BYTES", 8 * n * 3)  # three numeric columns per read
    reads: list[tuple[int, int]] = []  # (rows, columns) of every Arrow table made into a frame
    convert = reading.arrow_to_frame

    def spy(table, *args, **kwargs):
        reads.append((table.num_rows, table.num_columns))
        return convert(table, *args, **kwargs)

    monkeypatch.setattr(reading, "arrow_to_frame", spy)
    monkeypatch.setattr(population, "arrow_to_frame", spy)
    bounded = steps.report_from(source, tmp_path / "out", CONFIG, None, "all")
    monkeypatch.undo()

    sample = bounded.context.sample
    assert sample.sampled and sample.population_records == n > 2 * sample.records
    # of every record never the whole mart: at most 4 columns at a time (the scores' chunks have 500 rows)
    of_every_record = [cols for rows, cols in reads if rows == n]
    assert of_every_record and max(of_every_record) <= 4, reads
    assert (sample.records, width) in reads, reads  # every column only of the sample's records

    marts = warehouse.read_marts(source)  # the whole-mart read: the report as before
    whole = build_report(marts, CONFIG, run=bounded.context.run)
    assert {k: v for k, v in bounded.metrics.items() if k != "run"} == \
        {k: v for k, v in whole.metrics.items() if k != "run"}
    assert bounded.chart_png == whole.chart_png
    assert bounded.csv_text == whole.csv_text
    for name in ("anomaly_clusters", "anomaly_model_scores"):
        pd.testing.assert_frame_equal(getattr(bounded, name), getattr(whole, name), check_exact=True)
