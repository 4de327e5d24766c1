"""check, report and run: the steps after the build, wired for the CLI.

``run`` keeps the new warehouse unpublished until the checks passed and the report's model tables were
written into it, so readers only ever see a complete, checked set of marts plus its analysis tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from python_analysis import checks, pipeline, report, warehouse
from python_analysis.config import ReportConfig

DATA_DOCS_DIR = "data_docs"


def check_config_for(fit: pd.DataFrame, config: ReportConfig) -> checks.CheckConfig:
    """The checks verify the flag against the threshold the marts were built with."""
    threshold, mode = 0.15, "absolute"
    if len(fit):
        threshold = float(fit["anomaly_threshold"].iloc[0])
        mode = str(fit["anomaly_threshold_mode"].iloc[0])
    return checks.CheckConfig(anomaly_threshold=threshold, anomaly_threshold_mode=mode,
                              anomaly_rate_band=config.anomaly_rate_band)


def run_checks_on(path: Path, out_dir: Path, config: ReportConfig, echo=print) -> checks.CheckReport:
    tables = warehouse.read_checked_tables(path)
    echo(f"segfit: checking {len(tables)} tables with great-expectations (pandas datasource)")
    result = checks.run_checks(tables, check_config_for(tables["customer_segment_fit"], config),
                               data_docs_dir=out_dir / DATA_DOCS_DIR)
    echo(f"segfit: {result.evaluated} expectations evaluated: {len(result.errors)} errors, "
         f"{len(result.warnings)} warnings; Data Docs: {result.data_docs_index}")
    return result


def report_from(path: Path, out_dir: Path, config: ReportConfig, check_result: checks.CheckReport | None,
                grain: str, echo=print) -> report.Report:
    marts = warehouse.read_marts(path)  # read-only connection, closed before modelling starts
    echo(f"segfit: fitting models on {len(marts['customer_segment_fit'])} records")
    warnings = [w.describe() for w in check_result.warnings] if check_result else []
    docs = None
    if check_result and check_result.data_docs_index:
        docs = os.path.relpath(check_result.data_docs_index, out_dir)
    return report.build_report(marts, config, check_warnings=warnings, data_docs_href=docs, grain=grain)


def analysis_tables(result: report.Report) -> dict[str, pd.DataFrame]:
    return {"anomaly_clusters": result.anomaly_clusters, "anomaly_model_scores": result.anomaly_model_scores}


def _write(result: report.Report, out_dir: Path, echo) -> None:
    paths = report.write_report(result, out_dir)
    echo(f"segfit: report written: {paths['report.html']} ({len(paths)} files)")


def _grain_of(path: Path) -> str:
    tables = warehouse.read_tables(path, {"r": "marts.input_row_reconciliation"})["r"]
    dropped = tables.loc[tables["source"] == "customers", "dropped_by_grain"]
    return "latest" if len(dropped) and int(dropped.fillna(0).iloc[0]) > 0 else "all"


def check_published(published: Path, out_dir: Path, config: ReportConfig | None = None, echo=print) -> int:
    config = config or ReportConfig()
    result = run_checks_on(published, out_dir, config, echo)
    if not result.ok:
        echo(result.summary())
        return 3
    return 0


def report_published(published: Path, out_dir: Path, config: ReportConfig | None = None, echo=print) -> int:
    config = config or ReportConfig()
    result = report_from(published, out_dir, config, None, _grain_of(published), echo)
    warehouse.write_back_published(published, analysis_tables(result))
    _write(result, out_dir, echo)
    return 0


def run_all(options: pipeline.BuildOptions, published: Path, out_dir: Path,
            config: ReportConfig | None = None, echo=print) -> int:
    config = config or ReportConfig()
    echo("segfit: [1/3] build")
    candidate = pipeline.build_candidate(options, published, echo)
    try:
        echo("segfit: [2/3] checks")
        check_result = run_checks_on(candidate, out_dir, config, echo)
        if not check_result.ok:
            failed = published.with_name(f"{published.stem}.failed{published.suffix}")
            os.replace(candidate, failed)
            echo(check_result.summary())
            echo(f"segfit: checks failed; nothing was published. The failed build is kept at {failed}")
            return 3
        echo("segfit: [3/3] report")
        result = report_from(candidate, out_dir, config, check_result, options.grain, echo)
        warehouse.write_analysis_tables(candidate, analysis_tables(result))
        warehouse.publish(candidate, published)
        echo(f"segfit: published {published}")
        _write(result, out_dir, echo)
    finally:
        candidate.unlink(missing_ok=True)
    echo(pipeline.how_to_query(published))
    return 0
