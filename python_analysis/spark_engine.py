"""The Spark engine: ``segfit build|check|report|run --engine spark --warehouse DIR``.

``DIR`` is the Spark SQL warehouse directory. dbt (dbt-spark, session mode: pyspark in the dbt process,
``local[*]``; profile target ``spark``) writes every table as Parquet at Spark's managed location,
``DIR/<schema>.db/<table>/``, so each mart is at ``DIR/marts.db/<mart>/``.

**Publishing (the atomic-publish equivalent).** ``DIR`` is a symbolic link to one build's own warehouse
directory, ``<parent of DIR>/builds/<name>-<time>-<random>/<name>/``. A build writes only into a new,
locked directory of its own; when dbt (and, for ``run``, the checks, the report's analysis tables and the
report folder) are complete, the candidate is verified (every mart folder holds a finished Parquet
table: Spark's ``_SUCCESS`` marker and a readable schema) and published by renaming a new link over the
old one. A reader that resolves ``DIR`` gets the old warehouse or the new one, never a half-written one;
a failed or killed build leaves ``DIR`` untouched. It is the same scheme and code as the DuckDB engine
(``python_analysis.warehouse.publishing``), with a directory where DuckDB has a file.

**Checks.** The great-expectations checks run with GX's Spark datasource (``run_checks_on``,
``quality.run_checks_spark``): the same suites as on DuckDB, each table a lazy Spark DataFrame over its
Parquet folder, every expectation evaluated by Spark over every row; only metrics and a few example rows
reach the driver. The process starts one Spark session for them (``spark_session``) and reuses it; dbt's
session lives in the dbt process.

**Reading the marts after the build.** The report reads the Parquet tables directly, with DuckDB over the
files (``parquet_views``): no Spark session and nothing collected through a Spark driver. The report's two analysis tables are
written back as Parquet tables at ``DIR/analysis.db/<table>/`` (Spark's managed location), in the new
build directory, which is then published.

On a cluster, dbt runs the same models with the profile target ``spark_cluster`` (Thrift or HTTP); the
warehouse is then the cluster's, outside this module (README, "A real cluster").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from python_analysis import pipeline, quality, warehouse
from python_analysis.config import ReportConfig
from python_analysis.errors import EXIT_CHECKS_FAILED, EXIT_OK, SegfitError
from python_analysis.warehouse import publishing

log = logging.getLogger(__name__)
dbt_log = logging.getLogger(__name__ + ".dbt")  # dbt's own output, line by line (the CLI shows it as `  dbt | `)

DEFAULT_WAREHOUSE = "warehouse/spark"
WAREHOUSE_ENV = "SEGFIT_SPARK_WAREHOUSE"
HISTORY = ("snapshots", "customer_segment_fit_history")
SCHEMAS = ("staging", "intermediate", "marts", "snapshots", "analysis")
# Spark's own log lines (JSON, progress bars, JVM warnings) are not dbt's: kept out of the CLI's output
_NOISE = re.compile(r"^(\{\"ts\"|\[Stage |WARNING: |Using Spark's|Setting default log level|To adjust logging|"
                    r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d (WARN|INFO)|\s*require_minimum_pandas_version|.*FutureWarning)")


def spark_available() -> str | None:
    """None when the Spark engine can run here, else one line saying what to install."""
    try:
        import dbt.adapters.spark  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError:
        return "the Spark engine is not installed: run `make install-spark` (dbt-spark and pyspark)"
    if not (shutil.which("java") or (os.environ.get("JAVA_HOME") and Path(os.environ["JAVA_HOME"], "bin", "java").exists())):
        return ("the Spark engine needs a Java 17 runtime and none was found; on Debian/Ubuntu: "
                "apt-get install -y openjdk-17-jre-headless (or set JAVA_HOME)")
    return None


def run_dbt(args: list[str], warehouse_dir: Path, *, build: Mapping[str, str] | None = None) -> int:
    """One dbt command on the Spark target, writing the warehouse ``warehouse_dir``; dbt's artifacts go to
    ``<build dir>/dbt_target/`` as for a DuckDB build (a caller's ``DBT_TARGET_PATH`` wins)."""
    command = [warehouse.dbt_executable(), *args, "--project-dir", str(warehouse.PROJECT_DIR),
               "--profiles-dir", str(warehouse.PROJECT_DIR / "profiles"), "--target", "spark"]
    env = warehouse.dbt_environment(warehouse_dir.parent / "unused.duckdb", build)
    env.pop("SEGFIT_DUCKDB_PATH", None)
    env[WAREHOUSE_ENV] = str(warehouse_dir)
    env.setdefault("PYSPARK_PYTHON", str(Path(warehouse.dbt_executable()).with_name("python")))
    process = subprocess.Popen(  # noqa: S603 - fixed executable, validated arguments
        command, cwd=warehouse.PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if not _NOISE.match(line):
                dbt_log.info("%s", line.rstrip())
        return process.wait()
    except BaseException:
        warehouse.stop_process(process)
        raise


# ------------------------------------------------------------------------------------------------ build

def check_target(published: Path, inputs: tuple[Path, ...], force: bool) -> None:
    if published.exists() and not published.is_symlink() and not force:
        raise SegfitError(f"--warehouse {published} exists and is not a segfit Spark warehouse link; "
                          "choose another path or pass --force")
    if published.is_symlink() and not publishing.is_segfit_link(published) and not force:
        raise SegfitError(f"--warehouse {published} is a link segfit did not make; pass --force to replace it")
    for path in inputs:
        if published.exists() and Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(published))):
            raise SegfitError(f"input {path} lies inside the warehouse {published}; move it first")


def new_slot(published: Path) -> publishing.Slot:
    slot = publishing.new_slot(published)
    slot.target.mkdir()
    return slot


def build_candidate(options: pipeline.BuildOptions, published: Path, force: bool = False,
                    tests: bool = True) -> publishing.Slot:
    """``dbt build`` on Spark into a fresh, locked warehouse directory beside ``published``; not published.

    ``tests=False`` builds the models and the snapshot only (the identity suite: the DuckDB lane runs the
    data tests on the same SQL).
    """
    problem = spark_available()
    if problem:
        raise SegfitError(problem)
    options = pipeline.validated_options(options)
    check_target(published, tuple(p for p in (options.customers, options.transactions) if p), force)
    for stale in publishing.sweep(published):
        log.info("removed leftover build %s", stale)
    previous = publishing.current_target(published)
    slot = new_slot(published)
    try:
        log.info("building on Spark %s", options.describe())
        build_env = {**options.dbt_env(), "SEGFIT_INPUT_FINGERPRINTS": json.dumps(options.input_fingerprints())}
        if previous is not None and previous.joinpath(*_history_parts()).is_dir():
            build_env["SEGFIT_PREVIOUS_BUILD"] = str(previous)
        # the demo seeds are read from their CSV files on Spark (macro spark__segfit_seed_relation); the
        # inputs' source tests query the source as a table (`inputs.customers`), which only DuckDB has (its
        # external_location): on Spark the models read the files (spark__segfit_source_relation), and the
        # same rules are the quarantine's (data_quality_issues) and the staging models' tests
        selection = ["--exclude", "resource_type:seed", "source:segfit_inputs"]
        if not tests:
            selection += ["resource_type:test", "resource_type:unit_test"]
        with publishing.reading(previous) if previous is not None else contextlib.nullcontext():
            code = run_dbt(["build", "--vars", json.dumps(options.dbt_vars()), *selection], slot.target,
                           build=build_env)
        if code != 0:
            raise SegfitError(f"dbt build on Spark failed (exit {code}); the published warehouse {published} "
                              "is unchanged")
        verify_candidate(slot.target)
    except BaseException:
        slot.discard()
        raise
    return slot


def _history_parts() -> tuple[str, str]:
    return (f"{HISTORY[0]}.db", HISTORY[1])


def table_dir(warehouse_dir: Path, schema: str, table: str) -> Path:
    return warehouse_dir / f"{schema}.db" / table


def verify_candidate(warehouse_dir: Path) -> None:
    """Refuse to publish a warehouse whose marts are not all finished Parquet tables."""
    for mart in (*warehouse.MARTS, "build_metadata"):
        folder = table_dir(warehouse_dir, "marts", mart)
        if not (folder / "_SUCCESS").exists() or not any(folder.glob("*.parquet")):
            raise SegfitError(f"the Spark build {warehouse_dir} has no finished table marts.{mart}; not publishing")


def publish(published: Path, slot: publishing.Slot, report: tuple[Path, publishing.Slot] | None = None,
            expect_current: Path | None = None) -> None:
    """Swap ``published`` (and the report folder) to the new build: one rename each, both or neither."""
    verify_candidate(slot.target)
    with publishing._publish_lock(published):
        if expect_current is not None and publishing.current_target(published) != expect_current:
            raise SegfitError(f"{published} was republished while this step ran; nothing was published")
        if published.exists() and not published.is_symlink():
            # --force over a plain folder: move it aside (a folder cannot be renamed over)
            shutil.rmtree(published)
        previous = publishing._swap_link(published, slot)
        if report is not None:
            try:
                publishing._swap_link(*report)
            except OSError:
                if previous is not None:
                    publishing._restore(published, previous)
                    slot.published = False
                raise
    if publishing.current_target(published) != slot.target.resolve():
        raise SegfitError(f"{published} does not point at the new build {slot.target} after publishing")
    slot.release()
    if report is not None:
        report[1].release()
        publishing.sweep(report[0])
    publishing.sweep(published)


def build(options: pipeline.BuildOptions, published: Path, force: bool = False, tests: bool = True) -> Path:
    slot = build_candidate(options, published, force=force, tests=tests)
    try:
        publish(published, slot)
    except BaseException:
        slot.discard()
        raise
    log.info("published %s (marts at %s/<mart>/)", published, published / "marts.db")
    return published


# ------------------------------------------------------------------------------------------------ reading

def _relations(warehouse_dir: Path) -> dict[tuple[str, str], Path]:
    found = {}
    for schema in SCHEMAS:
        root = warehouse_dir / f"{schema}.db"
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                if folder.is_dir() and any(folder.glob("*.parquet")):
                    found[(schema, folder.name)] = folder
    return found


@contextlib.contextmanager
def parquet_views(warehouse_dir: Path) -> Iterator[Path]:
    """A throwaway DuckDB file with one view per Parquet table of the Spark warehouse
    (``marts.<mart>`` reads ``DIR/marts.db/<mart>/*.parquet``), so every reader of a DuckDB build (the
    checks, the report) reads a Spark build unchanged, streaming from the files. Spark's timestamps
    (instants, stored in UTC) are read as UTC wall-clock timestamps, as on DuckDB. The build's dbt artifacts
    (``<build dir>/dbt_target/``) are linked beside the file, so ``contracts.for_build`` checks the marts
    against the manifest of the Spark build that wrote them."""
    if not (warehouse_dir / "marts.db").is_dir():
        raise SegfitError(f"no Spark warehouse at {warehouse_dir}: run `segfit build --engine spark` first")
    with tempfile.TemporaryDirectory(prefix="segfit-spark-views-") as folder:
        path = Path(folder) / "segfit.duckdb"
        artifacts = warehouse_dir.resolve().parent / "dbt_target"
        if artifacts.is_dir():
            (Path(folder) / "dbt_target").symlink_to(artifacts, target_is_directory=True)
        with contextlib.closing(duckdb.connect(str(path))) as con:
            con.execute("set TimeZone = 'UTC'")
            for (schema, table), location in _relations(warehouse_dir).items():
                con.execute(f"create schema if not exists {schema}")
                files = str(location / "*.parquet")
                described = con.execute("describe select * from read_parquet(?)", [files]).fetchall()
                columns = ", ".join(
                    f'cast("{name}" as timestamp) as "{name}"' if kind.startswith("TIMESTAMP WITH TIME ZONE")
                    else f'"{name}"' for name, kind, *_ in described)
                literal = files.replace("'", "''")
                con.execute(f'create view {schema}."{table}" as select {columns} '  # noqa: S608 - names from the folder
                            f"from read_parquet('{literal}')")
        yield path


# ------------------------------------------------------------------------------------------------ checks

def spark_session() -> Any:
    """The process's Spark session for the checks (master from ``SEGFIT_SPARK_MASTER``, as the dbt profile;
    UTC; no UI): started once, then reused by every check run in this process (a JVM start costs 10-30 s).
    dbt's own session lives in the dbt process and ends with it."""
    problem = spark_available()
    if problem:
        raise SegfitError(problem)
    os.environ.setdefault("PYSPARK_PYTHON", str(Path(warehouse.dbt_executable()).with_name("python")))
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    started = time.perf_counter()
    session = (SparkSession.builder.appName("segfit-checks")
               .master(os.environ.get("SEGFIT_SPARK_MASTER", "local[2]"))
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.catalogImplementation", "in-memory")
               .config("spark.sql.shuffle.partitions", os.environ.get("SEGFIT_SPARK_SHUFFLE_PARTITIONS", "4"))
               .config("spark.driver.memory", os.environ.get("SEGFIT_SPARK_DRIVER_MEMORY", "2g"))
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    log.info("Spark session for the checks started in %.1f s", time.perf_counter() - started)
    return session


def spark_tables(spark: Any, warehouse_dir: Path) -> dict[str, Any]:
    """The checked tables of a Spark build (the marts and the validated inputs) as lazy Spark DataFrames over
    their Parquet folders: nothing is read here."""
    tables = {}
    for schema, names in (("marts", warehouse.MARTS), ("intermediate", warehouse.CHECKED_INPUTS)):
        for name in names:
            folder = table_dir(warehouse_dir, schema, name)
            if folder.is_dir() and any(folder.glob("*.parquet")):
                tables[name] = spark.read.parquet(str(folder))
    return tables


def run_checks_on(warehouse_dir: Path, out_dir: Path, config: ReportConfig) -> quality.CheckReport:
    """Validate a Spark build with great-expectations' Spark datasource (``quality.run_checks_spark``): the
    same suites, results and checks page as ``steps.run_checks_on`` on DuckDB, every expectation evaluated
    by Spark over every row."""
    from python_analysis import steps

    if not (warehouse_dir / "marts.db").is_dir():
        raise SegfitError(f"no Spark warehouse at {warehouse_dir}: run `segfit build --engine spark` first")
    spark = spark_session()
    tables = spark_tables(spark, warehouse_dir)
    if "customer_segment_fit" not in tables:
        raise SegfitError(f"the Spark build {warehouse_dir} has no table marts.customer_segment_fit")
    first = tables["customer_segment_fit"].select("anomaly_threshold", "anomaly_threshold_mode").limit(1).collect()
    head = pd.DataFrame([row.asDict() for row in first], columns=["anomaly_threshold", "anomaly_threshold_mode"])
    check_config = steps.check_config_for(head, config)
    log.info("checking %d tables: great-expectations' Spark datasource, every expectation in Spark over every row",
             len(tables))
    result = quality.run_checks_spark(spark, tables, check_config)
    return steps.write_checks_page(result, check_config, out_dir)


def write_analysis_tables(warehouse_dir: Path, frames: Mapping[str, pd.DataFrame]) -> None:
    """The report's tables as Parquet tables at Spark's managed location, ``DIR/analysis.db/<name>/``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name, frame in frames.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise SegfitError(f"bad analysis table name {name!r}")
        folder = table_dir(warehouse_dir, "analysis", name)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "part-00000.parquet")
        (folder / "_SUCCESS").touch()


# ------------------------------------------------------------------------------------------------ steps

def _snapshot(published: Path) -> Path:
    snapshot = publishing.current_target(published)
    if snapshot is None or not snapshot.is_dir():
        raise SegfitError(f"no Spark warehouse at {published}: run `segfit build --engine spark` first")
    return snapshot


def check_published(published: Path, out_dir: Path, config: ReportConfig | None = None) -> int:
    """Validate the published Spark build; the checks page goes to ``out_dir`` (written in place)."""

    snapshot = _snapshot(published)
    publishing.check_out_target(out_dir, force=True)
    with publishing.reading(snapshot):
        result = run_checks_on(snapshot, out_dir, config or ReportConfig())
    if not result.ok:
        log.error("%s", result.summary())
        return EXIT_CHECKS_FAILED
    return EXIT_OK


def _copy_warehouse(source: Path, target: Path) -> None:
    """The build's tables in a new build directory: hard links (Parquet files are never modified in place),
    so a report's write-back costs no copy of the data."""
    shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=True, copy_function=os.link)


def report_published(published: Path, out_dir: Path, config: ReportConfig | None = None,
                     force: bool = False) -> int:
    from python_analysis import steps
    from python_analysis.report.runinfo import now_utc

    config = config or ReportConfig()
    started_at = now_utc()
    snapshot = _snapshot(published)
    publishing.check_out_target(out_dir, force=force)
    with publishing.reading(snapshot):
        slot = new_slot(published)
        report_slot = publishing.new_slot(out_dir, is_dir=True)
        try:
            with parquet_views(snapshot) as views:
                result = steps.report_from(views, report_slot.target, config, None, steps._grain_of(views),
                                           started_at)
            _copy_warehouse(snapshot, slot.target)
            write_analysis_tables(slot.target, steps.analysis_tables(result))
            steps._write(result, report_slot.target)
            publish(published, slot, report=(out_dir, report_slot), expect_current=snapshot)
        finally:
            slot.discard()
            report_slot.discard()
    log.info("published %s and %s", published, out_dir)
    return EXIT_OK


def run_all(options: pipeline.BuildOptions, published: Path, out_dir: Path, config: ReportConfig | None = None,
            force: bool = False, tests: bool = True) -> int:
    """Build on Spark, check and report; publish the warehouse and its report together, or nothing."""
    from python_analysis import steps
    from python_analysis.report.runinfo import now_utc

    config = config or ReportConfig()
    started_at = now_utc()
    publishing.check_out_target(out_dir, force=force)
    log.info("[1/3] build (Spark)")
    slot = build_candidate(options, published, force=force, tests=tests)
    report_slot = None
    try:
        report_slot = publishing.new_slot(out_dir, is_dir=True)
        log.info("[2/3] checks")
        check_result = run_checks_on(slot.target, report_slot.target, config)
        if not check_result.ok:
            failed = published.with_name(f"{published.name}.failed")
            shutil.rmtree(failed, ignore_errors=True)
            os.replace(slot.target, failed)
            failed_docs = out_dir.with_name(f"{out_dir.name}.failed")
            shutil.rmtree(failed_docs, ignore_errors=True)
            os.replace(report_slot.target, failed_docs)
            log.error("%s", check_result.summary())
            log.error("checks failed; nothing was published. The failed build is kept at %s, its checks page "
                      "at %s", failed, failed_docs / steps.CHECKS_PAGE)
            return EXIT_CHECKS_FAILED
        log.info("[3/3] report")
        with parquet_views(slot.target) as views:
            result = steps.report_from(views, report_slot.target, config, check_result, options.grain, started_at)
        write_analysis_tables(slot.target, steps.analysis_tables(result))
        steps._write(result, report_slot.target)
        publish(published, slot, report=(out_dir, report_slot))
        log.info("published %s and %s", published, out_dir)
    finally:
        slot.discard()
        if report_slot is not None:
            report_slot.discard()
    log.info("the marts are Parquet tables at %s/marts.db/<mart>/ (README, \"Spark\")", published)
    return EXIT_OK
