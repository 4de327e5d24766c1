"""check, report and run: the steps after the build, wired for the CLI.

``run`` keeps the new warehouse unpublished until the checks passed, the report's model tables were
written into it and the report folder was written; then both are published together (``publishing``),
so readers only ever see a complete, checked set of marts with its analysis tables and its report.
``report`` reads one build (the snapshot the published link points at), writes its analysis tables into
a copy of exactly that build, and publishes only if no other build was published meanwhile.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from python_analysis import checks, pipeline, publishing, report, serving, warehouse
from python_analysis.config import ReportConfig
from python_analysis.errors import EXIT_CHECKS_FAILED

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
    """Validate a build without loading any whole large table: each table is streamed in chunks of at most
    ``SEGFIT_CHECK_CHUNK_CELLS`` cells (see ``checks.run_checks``)."""
    cells = checks.chunk_cells_from_env()
    with warehouse.checked_sources(path) as (sources, con):
        head = con.execute("select anomaly_threshold, anomaly_threshold_mode "
                           "from marts.customer_segment_fit limit 1").df()
        echo(f"segfit: checking {len(sources)} tables: great-expectations (pandas) on tables of at most "
             f"{cells:,} cells, larger tables in SQL over every row")
        result = checks.run_checks(sources, check_config_for(head, config),
                                   data_docs_dir=out_dir / DATA_DOCS_DIR, chunk_cells=cells)
    echo(f"segfit: {result.evaluated} expectations evaluated: {len(result.errors)} errors, "
         f"{len(result.warnings)} warnings; Data Docs: {result.data_docs_index}")
    if result.validated_in_sql:
        echo("segfit: validated in SQL (not in Data Docs): " + ", ".join(
            f"{table} ({rows:,} rows)" for table, rows in result.validated_in_sql.items()))
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


def _grain_of(path: Path) -> str:
    tables = warehouse.read_tables(path, {"r": "marts.input_row_reconciliation"})["r"]
    dropped = tables.loc[tables["source"] == "customers", "dropped_by_grain"]
    return "latest" if len(dropped) and int(dropped.fillna(0).iloc[0]) > 0 else "all"


def check_published(published: Path, out_dir: Path, config: ReportConfig | None = None, echo=print) -> int:
    """Validate the published build; Data Docs go to ``out_dir`` (written in place, not published)."""
    config = config or ReportConfig()
    snapshot = publishing.check_readable_warehouse(published)
    publishing.check_out_target(out_dir, force=True)
    with publishing.reading(snapshot):
        result = run_checks_on(snapshot, out_dir, config, echo)
    if not result.ok:
        echo(result.summary())
        return EXIT_CHECKS_FAILED
    return 0


def _copy_database(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    wal = source.with_name(source.name + ".wal")
    if wal.exists():  # committed changes not yet checkpointed belong to the snapshot too
        shutil.copyfile(wal, target.with_name(target.name + ".wal"))


def report_published(published: Path, out_dir: Path, config: ReportConfig | None = None, echo=print,
                     force: bool = False) -> int:
    config = config or ReportConfig()
    snapshot = publishing.check_readable_warehouse(published)
    publishing.check_out_target(out_dir, force=force)
    with publishing.reading(snapshot):
        slot = publishing.new_slot(published)
        report_slot = publishing.new_slot(out_dir, is_dir=True)
        try:
            result = report_from(snapshot, report_slot.target, config, None, _grain_of(snapshot), echo)
            _copy_database(snapshot, slot.target)
            warehouse.write_analysis_tables(slot.target, analysis_tables(result))
            _write(result, report_slot.target, echo)
            publishing.publish(published, slot, report=(out_dir, report_slot), expect_current=snapshot)
        finally:
            slot.discard()
            report_slot.discard()
    echo(f"segfit: published {published} and {out_dir}")
    return 0


def run_all(options: pipeline.BuildOptions, published: Path, out_dir: Path,
            config: ReportConfig | None = None, echo=print, force: bool = False) -> int:
    config = config or ReportConfig()
    publishing.check_out_target(out_dir, force=force)
    echo("segfit: [1/3] build")
    slot = pipeline.build_candidate(options, published, echo, force=force)
    report_slot = None
    try:
        report_slot = publishing.new_slot(out_dir, is_dir=True)
        echo("segfit: [2/3] checks")
        check_result = run_checks_on(slot.target, report_slot.target, config, echo)
        if not check_result.ok:
            failed = published.with_name(f"{published.stem}.failed{published.suffix}")
            os.replace(slot.target, failed)
            failed_docs = out_dir.with_name(f"{out_dir.name}.failed")
            shutil.rmtree(failed_docs, ignore_errors=True)
            os.replace(report_slot.target, failed_docs)
            echo(check_result.summary())
            echo(f"segfit: checks failed; nothing was published. The failed build is kept at {failed}, "
                 f"its Data Docs at {failed_docs / DATA_DOCS_DIR}")
            return EXIT_CHECKS_FAILED
        echo("segfit: [3/3] report")
        result = report_from(slot.target, report_slot.target, config, check_result, options.grain, echo)
        warehouse.write_analysis_tables(slot.target, analysis_tables(result))
        _write(result, report_slot.target, echo)
        publishing.publish(published, slot, report=(out_dir, report_slot))
        echo(f"segfit: published {published} and {out_dir}")
    finally:
        slot.discard()
        if report_slot is not None:
            report_slot.discard()
    echo(serving.how_to_query(published))
    return 0


def _write(result: report.Report, out_dir: Path, echo) -> None:
    paths = report.write_report(result, out_dir)
    echo(f"segfit: report written: {out_dir / 'report.html'} ({len(paths)} files)")
