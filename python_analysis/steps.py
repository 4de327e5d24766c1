"""check, report and run: the steps after the build, wired for the CLI.

``run`` keeps the new warehouse unpublished until the checks passed, the report's model tables were
written into it and the report folder was written; then both are published together (``publishing``),
so readers only ever see a complete, checked set of marts with its analysis tables and its report.
``report`` reads one build (the snapshot the published link points at), writes its analysis tables into
a copy of exactly that build, and publishes only if no other build was published meanwhile.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from python_analysis import pipeline, quality, report, sampling, serving, warehouse, worker
from python_analysis.config import ReportConfig
from python_analysis.errors import EXIT_CHECKS_FAILED, EXIT_OK
from python_analysis.report.checks_page import checks_page
from python_analysis.report.runinfo import RunInfo, now_utc
from python_analysis.warehouse import publishing
from python_analysis.warehouse.population import read_bounded

log = logging.getLogger(__name__)

CHECKS_PAGE = "checks.html"  # segfit's own page of every check and its result (no GX Data Docs: see checks_page)


def check_config_for(fit: pd.DataFrame, config: ReportConfig) -> quality.CheckConfig:
    """The checks verify the flag against the threshold the marts were built with."""
    threshold, mode = 0.15, "absolute"
    if len(fit):
        threshold = float(fit["anomaly_threshold"].iloc[0])
        mode = str(fit["anomaly_threshold_mode"].iloc[0])
    return quality.CheckConfig(anomaly_threshold=threshold, anomaly_threshold_mode=mode,
                               anomaly_rate_band=config.anomaly_rate_band)


def run_checks_on(path: Path, out_dir: Path, config: ReportConfig) -> quality.CheckReport:
    """Validate a build without loading any whole large table: each table is streamed in chunks of at most
    ``SEGFIT_CHECK_CHUNK_CELLS`` cells (see ``quality.run_checks``). Writes the checks page into ``out_dir``."""
    cells = quality.chunk_cells_from_env()
    with warehouse.checked_sources(path) as (sources, con):
        head = con.execute("select anomaly_threshold, anomaly_threshold_mode "
                           "from marts.customer_segment_fit limit 1").df()
        log.info("checking %d tables: great-expectations (pandas) on tables of at most %s cells, larger tables "
                 "in SQL over every row", len(sources), f"{cells:,}")
        check_config = check_config_for(head, config)
        result = quality.run_checks(sources, check_config, chunk_cells=cells)
    return write_checks_page(result, check_config, out_dir)


def write_checks_page(result: quality.CheckReport, check_config: quality.CheckConfig,
                      out_dir: Path) -> quality.CheckReport:
    """The checks page of a check run in ``out_dir`` (either engine), and its summary in the log."""
    page = out_dir / CHECKS_PAGE
    out_dir.mkdir(parents=True, exist_ok=True)
    page.write_text(checks_page(result, check_config), encoding="utf-8", newline="\n")
    log.info("%d expectations evaluated: %d errors, %d warnings; checks page: %s", result.evaluated,
             len(result.errors), len(result.warnings), page)
    if result.validated_in_sql:
        log.info("validated in SQL over every row: %s", ", ".join(
            f"{table} ({rows:,} rows)" for table, rows in result.validated_in_sql.items()))
    return result


def report_from(path: Path, out_dir: Path, config: ReportConfig, check_result: quality.CheckReport | None,
                grain: str, started_at: str | None = None, copy_to: Path | None = None) -> report.Report:
    """The report of the build at ``path``; with ``copy_to``, the file at ``path`` is also copied there (the copy
    that receives the analysis tables) while the report is computed, and the copy is complete on return."""
    # on large data the report's helper process (python_analysis.worker) starts before the marts are read, while
    # this process is small, and imports its modules meanwhile; the report stops it when its parts are done
    # (context.start_context). The copy is made by the helper while this process reads (its core is idle then),
    # else by a thread (sendfile runs in the kernel); on an error or interrupt, leaving the block stops the helper
    # (a partial copy is discarded by the caller) or waits for the thread
    records = warehouse.count_rows(path, "marts.customer_segment_fit")
    large = sampling.is_large(records, config)
    with worker.side_process(large and worker.helper_enabled()) as runner, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="segfit-copy") as copying:
        helper_copy = thread_copy = None
        if copy_to is not None and runner.parallel:
            helper_copy = runner.submit("the warehouse copy", pipeline.copy_database, path, copy_to)
        elif copy_to is not None:
            thread_copy = copying.submit(pipeline.copy_database, path, copy_to)
        # read-only connections, closed before modelling starts; on data far above the sampling threshold the fit
        # mart is not read whole: a Population holds a few columns of every record and reads the rest when needed
        # (bounded memory, #11; warehouse.population.read_bounded)
        population = None
        if large and read_bounded(records):
            marts, population = warehouse.read_marts_bounded(path)
        else:
            marts = warehouse.read_marts(path)
        log.info("fitting models on %d records", len(marts["customer_segment_fit"]))
        warnings = [w.describe() for w in check_result.warnings] if check_result else []
        page = CHECKS_PAGE if (out_dir / CHECKS_PAGE).is_file() else None
        run = RunInfo.from_marts(marts, grain=grain, started_at=started_at)
        result = report.build_report(marts, config, check_warnings=warnings, data_docs_href=page, grain=grain,
                                     run=run, runner=runner, population=population)
        if helper_copy is not None:
            runner.result(helper_copy)
        if thread_copy is not None:
            thread_copy.result()
        return result


def analysis_tables(result: report.Report) -> dict[str, pd.DataFrame]:
    return {"anomaly_clusters": result.anomaly_clusters, "anomaly_model_scores": result.anomaly_model_scores}


def _grain_of(path: Path) -> str:
    tables = warehouse.read_tables(path, {"r": "marts.input_row_reconciliation"})["r"]
    dropped = tables.loc[tables["source"] == "customers", "dropped_by_grain"]
    return "latest" if len(dropped) and int(dropped.fillna(0).iloc[0]) > 0 else "all"


def check_published(published: Path, out_dir: Path, config: ReportConfig | None = None) -> int:
    """Validate the published build; the checks page goes to ``out_dir`` (written in place, not published)."""
    config = config or ReportConfig()
    snapshot = publishing.check_readable_warehouse(published)
    publishing.check_out_target(out_dir, force=True)
    with publishing.reading(snapshot):
        result = run_checks_on(snapshot, out_dir, config)
    if not result.ok:
        log.error("%s", result.summary())
        return EXIT_CHECKS_FAILED
    return EXIT_OK


def report_published(published: Path, out_dir: Path, config: ReportConfig | None = None,
                     force: bool = False) -> int:
    config = config or ReportConfig()
    started_at = now_utc()
    snapshot = publishing.check_readable_warehouse(published)
    publishing.check_out_target(out_dir, force=force)
    with publishing.reading(snapshot):
        slot = publishing.new_slot(published)
        report_slot = publishing.new_slot(out_dir, is_dir=True)
        try:
            # the copy that receives the analysis tables is made while the report is computed (report_from)
            result = report_from(snapshot, report_slot.target, config, None, _grain_of(snapshot), started_at,
                                 copy_to=slot.target)
            _write_outputs(result, slot.target, report_slot.target)
            publishing.publish(published, slot, report=(out_dir, report_slot), expect_current=snapshot)
        finally:
            slot.discard()
            report_slot.discard()
    log.info("published %s and %s", published, out_dir)
    return EXIT_OK


def run_all(options: pipeline.BuildOptions, published: Path, out_dir: Path,
            config: ReportConfig | None = None, force: bool = False) -> int:
    """Build, check and report; publish the warehouse and its report together, or nothing."""
    config = config or ReportConfig()
    started_at = now_utc()
    publishing.check_out_target(out_dir, force=force)
    log.info("[1/3] build")
    # the checks' library loads while dbt builds (a subprocess that leaves this process idle): about 2.5 s
    # less on the run's critical path
    preloading = threading.Thread(target=_import_quietly, args=(quality.import_great_expectations,),
                                  name="segfit-preload", daemon=True)
    preloading.start()
    try:
        slot = pipeline.build_candidate(options, published, force=force)
    finally:
        preloading.join()
    report_slot = None
    try:
        report_slot = publishing.new_slot(out_dir, is_dir=True)
        log.info("[2/3] checks")
        check_result = run_checks_on(slot.target, report_slot.target, config)
        if not check_result.ok:
            failed = published.with_name(f"{published.stem}.failed{published.suffix}")
            os.replace(slot.target, failed)
            failed_docs = out_dir.with_name(f"{out_dir.name}.failed")
            shutil.rmtree(failed_docs, ignore_errors=True)
            os.replace(report_slot.target, failed_docs)
            log.error("%s", check_result.summary())
            log.error("checks failed; nothing was published. The failed build is kept at %s, its checks page at %s",
                      failed, failed_docs / CHECKS_PAGE)
            return EXIT_CHECKS_FAILED
        log.info("[3/3] report")
        result = report_from(slot.target, report_slot.target, config, check_result, options.grain, started_at)
        _write_outputs(result, slot.target, report_slot.target)
        publishing.publish(published, slot, report=(out_dir, report_slot))
        log.info("published %s and %s", published, out_dir)
    finally:
        slot.discard()
        if report_slot is not None:
            report_slot.discard()
    log.info("%s", serving.how_to_query(published), extra={"raw": True})
    return EXIT_OK


def _write_outputs(result: report.Report, target: Path, out_dir: Path) -> None:
    """The analysis tables into the warehouse file ``target`` and the report's files into ``out_dir``, side by
    side: DuckDB's write runs in a thread (outside the GIL) while this one writes the files; leaving waits for
    both, and either one's error is raised (the report's first)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segfit-tables") as writing:
        tables = writing.submit(warehouse.write_analysis_tables, target, analysis_tables(result))
        _write(result, out_dir)  # on an error here, leaving the block waits for the tables' write first
    tables.result()


def _import_quietly(load) -> None:
    """Run an import function in a background thread; a failure is left for the step that needs the modules
    to raise, with its own message (a thread would print a traceback)."""
    try:
        load()
    except Exception:  # noqa: BLE001 - re-raised where the modules are used
        log.debug("background import failed", exc_info=True)


def _write(result: report.Report, out_dir: Path) -> None:
    paths = report.write_report(result, out_dir)
    log.info("report written: %s (%d files)", out_dir / "report.html", len(paths))
