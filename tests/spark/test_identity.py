"""One project, two engines, identical marts.

Each case is built twice from the same input, with real `dbt build` on DuckDB (the segfit pipeline) and on
Spark (dbt-spark in session mode, Parquet tables), and every mart is compared row by row, ordered by its
key: integers, text, booleans and timestamps exactly, doubles within 1e-12 relative. The Spark builds run
the models and the snapshot without the dbt data tests (the DuckDB lane runs those on the same SQL), which
keeps a Spark build near a minute.

Cases (SEGFIT_SPARK_CASES: a comma list, default all): the shared extract in both grains, the demo in both
input paths and both grains, and the bad-input catalogue of tests/integration/test_bad_inputs.py (the same rows
rejected for the same reasons).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from python_analysis import pipeline, spark_engine, steps
from python_analysis.config import ReportConfig
from python_analysis.report import json_ready
from tests.spark.identity import MART_KEYS, compare_mart, compare_warehouses, duckdb_mart, spark_mart

PROJECT = Path(__file__).resolve().parents[2]
SHARED_EXTRACT = PROJECT.parent / "shared" / "data" / "netsuite2_customer_analytics.csv"
TIMINGS: dict[str, dict[str, float]] = {}


def _bad_inputs(folder: Path) -> pipeline.BuildOptions:
    """The quarantine catalogue's two files, written exactly as tests/integration/test_bad_inputs.py writes
    them."""
    from tests.integration import test_bad_inputs as bad

    customers = folder / "customers.csv"
    transactions = folder / "transactions.csv"
    lines = [bad.CUSTOMER_HEADER, *bad.GOOD_CUSTOMERS, *(c.row for c in bad.CUSTOMER_CASES)]
    customers.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode())
    lines = [bad.TRANSACTION_HEADER, *bad.GOOD_TRANSACTIONS, *(c.row for c in bad.TRANSACTION_CASES)]
    transactions.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return pipeline.BuildOptions(customers=customers, transactions=transactions,
                                 extra_vars=(("allowed_segments", "Gold,Tin,Lonely"),))


def _shared_parquet(folder: Path) -> pipeline.BuildOptions:
    """The shared extract as a typed Parquet file (DuckDB's types: doubles, bigints, a timestamp), so the
    Parquet reader, its row index and the typed-column casts are compared too."""
    import duckdb

    path = folder / "customers.parquet"
    with duckdb.connect() as con:
        con.execute("copy (select * from read_csv(?)) to '" + str(path).replace("'", "''") + "' (format parquet)",
                    [str(SHARED_EXTRACT)])
    return pipeline.BuildOptions(customers=path)


CASES = {
    "shared_all": lambda folder: pipeline.BuildOptions(customers=SHARED_EXTRACT),
    "shared_latest": lambda folder: pipeline.BuildOptions(customers=SHARED_EXTRACT, grain="latest"),
    "demo_all": lambda folder: pipeline.BuildOptions(),
    "demo_latest": lambda folder: pipeline.BuildOptions(grain="latest"),
    "demo_precomputed_all": lambda folder: pipeline.BuildOptions(demo_variant="precomputed"),
    "demo_precomputed_latest": lambda folder: pipeline.BuildOptions(demo_variant="precomputed", grain="latest"),
    "bad_inputs": _bad_inputs,
    "shared_parquet": _shared_parquet,
    # history over builds: the second build carries the first one's snapshot forward, and
    # customer_fit_changes lists the customers whose flag changed with the threshold
    "shared_history": lambda folder: [pipeline.BuildOptions(customers=SHARED_EXTRACT),
                                      pipeline.BuildOptions(customers=SHARED_EXTRACT, threshold=0.10)],
}


def _selected() -> list[str]:
    raw = os.environ.get("SEGFIT_SPARK_CASES", "all").strip()
    names = list(CASES) if raw in ("", "all") else [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        raise ValueError(f"SEGFIT_SPARK_CASES: unknown case(s) {unknown}; known: {list(CASES)}")
    return names


class _ThreadLines(logging.Handler):
    """The Spark engine's log lines (dbt's output included) of one build thread, to show when it fails."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())


class Builds:
    """Every selected case built once per session on both engines, two cases at a time: a Spark build is
    mostly waiting (JVM start, one small job per model), so two of them share the two cores well."""

    def __init__(self, root: Path, workers: int = 2) -> None:
        self.root = root
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.futures: dict[str, Future] = {case: self.pool.submit(self._build, case) for case in _selected()}

    def _build(self, case: str) -> tuple[Path, Path, pipeline.BuildOptions]:
        folder = self.root / case
        folder.mkdir()
        made = CASES[case](folder)
        sequence = made if isinstance(made, list) else [made]  # a list: builds in turn (history)
        started = time.perf_counter()
        for options in sequence:
            duck = pipeline.build(options, folder / "duckdb" / "segfit.duckdb")
        middle = time.perf_counter()
        engine_log = logging.getLogger(spark_engine.__name__)
        lines = _ThreadLines()
        engine_log.addHandler(lines)
        try:
            for options in sequence:
                spark = spark_engine.build(options, folder / "spark" / "warehouse", tests=False)
        except Exception as exc:
            raise AssertionError(f"{case}: Spark build failed:\n" + "\n".join(lines.lines[-60:])) from exc
        finally:
            engine_log.removeHandler(lines)
        TIMINGS[case] = {"duckdb_build_s": round(middle - started, 1),
                         "spark_build_s": round(time.perf_counter() - middle, 1)}
        return duck, spark, options

    def __call__(self, case: str) -> tuple[Path, Path, pipeline.BuildOptions]:
        built = self.futures[case].result()
        print(f"\n{case}: DuckDB build {TIMINGS[case]['duckdb_build_s']} s, "
              f"Spark build {TIMINGS[case]['spark_build_s']} s (two cases build at a time)")
        return built


@pytest.fixture(scope="session")
def builds(tmp_path_factory):
    logging.getLogger(spark_engine.__name__).setLevel(logging.INFO)  # dbt's lines reach _ThreadLines
    built = Builds(tmp_path_factory.mktemp("identity"))
    yield built
    built.pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("case", _selected())
def test_every_mart_is_identical_on_duckdb_and_spark(case, builds):
    duck, spark, _ = builds(case)
    diffs = compare_warehouses(duck, spark)
    assert set(diffs) == set(MART_KEYS)
    fit_rows = diffs["customer_segment_fit"].rows[0]
    assert fit_rows > 0, "an empty build proves nothing"
    report = [f"{mart}: {d.rows[0]} vs {d.rows[1]} rows, {d.differing_cells} differing cells, "
              f"columns {d.columns_only_in}\n    " + "\n    ".join(d.cells)
              for mart, d in diffs.items() if not d.identical]
    print(f"{case}: " + ", ".join(f"{m} {d.rows[0]} rows (max rel {d.max_rel_diff:.1e})" for m, d in diffs.items()))
    assert not report, f"{case}: marts differ between DuckDB and Spark:\n" + "\n".join(report)


def test_the_spark_marts_are_parquet_tables_at_the_managed_location(builds):
    case = _selected()[0]
    _, spark, _ = builds(case)
    resolved = spark.resolve()
    assert spark.is_symlink() and resolved.parent.parent == (spark.parent / "builds").resolve()
    for mart in MART_KEYS:
        folder = spark / "marts.db" / mart
        assert (folder / "_SUCCESS").exists(), mart
        assert list(folder.glob("part-*.parquet")), mart


def test_the_comparison_sees_a_changed_double_text_flag_or_row():
    """The comparison itself can fail: a changed flag, text or a double beyond 1e-12 is a difference;
    a double within it is not."""
    row = {"customer_record_id": "a", "x": 0.1, "flag": True, "name": "n"}
    same = compare_mart([row], [dict(row, x=0.1 * (1 + 1e-13))], "customer_segment_fit")
    assert same.identical
    for changed in ({"x": 0.1 * (1 + 1e-11)}, {"flag": False}, {"name": "N"}, {"x": None}):
        assert not compare_mart([row], [dict(row, **changed)], "customer_segment_fit").identical, changed
    assert not compare_mart([row], [], "customer_segment_fit").identical
    # a difference column is compared at its operands' scale (1): 1e-15 apart at 0.001 is the same value,
    # 1e-11 apart is not
    near_zero = {"customer_record_id": "a", "value_mismatch_z": 0.001}
    assert compare_mart([near_zero], [dict(near_zero, value_mismatch_z=0.001 + 1e-15)], "customer_segment_fit").identical
    assert not compare_mart([near_zero], [dict(near_zero, value_mismatch_z=0.001 + 1e-11)],
                            "customer_segment_fit").identical


def _metrics(path: Path, grain: str, out: Path, spark: bool) -> dict:
    if spark:
        with spark_engine.parquet_views(path) as views:
            result = steps.report_from(views, out, ReportConfig(), None, grain)
    else:
        result = steps.report_from(path, out, ReportConfig(), None, grain)
    return _without_run_metadata(json.loads(json.dumps(json_ready(result.metrics), sort_keys=True)))


# Run metadata in metrics.json: when the build and the report ran, which differs between any two runs,
# whatever the engine (the rest of metrics["run"], inputs, grain, threshold, versions, must be equal).
RUN_METADATA_KEYS = ("built_at", "started_at", "finished_at")


def _without_run_metadata(metrics: dict) -> dict:
    metrics.pop("generated_at", None)
    for key in RUN_METADATA_KEYS:
        metrics.get("run", {}).pop(key, None)
    return metrics


def _differences(left, right, where="metrics") -> list[str]:
    if isinstance(left, dict) and isinstance(right, dict):
        found = [f"{where}: keys only on one side: {sorted(set(left) ^ set(right))}"] if set(left) != set(right) else []
        for key in sorted(set(left) & set(right)):
            found += _differences(left[key], right[key], f"{where}.{key}")
        return found
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return [f"{where}: {len(left)} vs {len(right)} items"]
        return [d for i, (a, b) in enumerate(zip(left, right, strict=True)) for d in _differences(a, b, f"{where}[{i}]")]
    if isinstance(left, float) and isinstance(right, float) and not (math.isnan(left) or math.isnan(right)):
        return [] if math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12) else [f"{where}: {left!r} != {right!r}"]
    return [] if left == right else [f"{where}: {left!r} != {right!r}"]


def test_metrics_json_is_the_same_from_either_engine(builds, tmp_path):
    case = _selected()[0]
    duck, spark, options = builds(case)
    duck_metrics = _metrics(duck, options.grain, tmp_path / "duck", spark=False)
    spark_metrics = _metrics(spark, options.grain, tmp_path / "spark", spark=True)
    assert duck_metrics["sample"] if "sample" in duck_metrics else duck_metrics
    differences = _differences(duck_metrics, spark_metrics)
    exact = duck_metrics == spark_metrics
    print(f"{case}: metrics.json {'byte-for-byte equal' if exact else 'equal within 1e-9 relative'} "
          f"({len(json.dumps(duck_metrics))} characters)")
    assert not differences, "\n".join(differences[:30])


def test_mart_readers_get_the_same_frames_as_from_duckdb(builds):
    """What the report reads (DuckDB views over the Spark Parquet files) has the DuckDB build's columns and
    column types."""
    import duckdb

    case = _selected()[0]
    duck, spark, _ = builds(case)
    with spark_engine.parquet_views(spark) as views:
        for mart in MART_KEYS:
            with duckdb.connect(str(duck), read_only=True) as a, duckdb.connect(str(views), read_only=True) as b:
                left = a.execute(f"describe marts.{mart}").fetchall()
                right = b.execute(f"describe marts.{mart}").fetchall()
            assert [r[:2] for r in left] == [r[:2] for r in right], mart
    assert duckdb_mart(duck, "customer_segment_fit") and spark_mart(spark, "customer_segment_fit")


# ------------------------------------------------------------------------------------------------ checks

def test_the_checks_of_a_spark_build_run_in_gx_spark_and_match_duckdb(builds, tmp_path):
    """`segfit check --engine spark` validates every table with great-expectations' Spark datasource (GX's
    validation result names a Spark DataFrame as the batch), with the same expectations, counts, results and
    checks page as `segfit check` on the DuckDB build of the same input."""
    from python_analysis import quality

    case = _selected()[0]
    duck, spark, _ = builds(case)
    started = time.perf_counter()
    duck_result = steps.run_checks_on(duck, tmp_path / "duck", ReportConfig())
    middle = time.perf_counter()
    spark_result = spark_engine.run_checks_on(spark, tmp_path / "spark", ReportConfig())
    print(f"\n{case}: checks on DuckDB {middle - started:.1f} s, on Spark (GX Spark datasource) "
          f"{time.perf_counter() - middle:.1f} s; {spark_result.evaluated} expectations")
    assert spark_result.gx_batches == {table: "SparkDataFrame" for table in quality.TABLES}
    assert duck_result.evaluated > 100 and duck_result.ok, duck_result.summary()
    assert (spark_result.evaluated, spark_result.skipped) == (duck_result.evaluated, duck_result.skipped)
    assert spark_result.errors == duck_result.errors
    assert spark_result.warnings == duck_result.warnings
    assert spark_result.summary() == duck_result.summary()
    page = (tmp_path / "spark" / steps.CHECKS_PAGE).read_text(encoding="utf-8")
    assert page == (tmp_path / "duck" / steps.CHECKS_PAGE).read_text(encoding="utf-8")

    # GX's Data Docs from the Spark validation results (two small tables keep this quick)
    session = spark_engine.spark_session()
    tables = spark_engine.spark_tables(session, spark)
    small = {name: tables[name] for name in ("input_row_reconciliation", "segment_retention_summary")}
    docs = quality.run_checks_spark(session, small, steps.check_config_for(pd.DataFrame(), ReportConfig()),
                                    data_docs_dir=tmp_path / "docs")
    assert docs.ok and docs.data_docs_index is not None and docs.data_docs_index.is_file()
    pages = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "docs" / "validations").rglob("*.html"))
    assert "input_row_reconciliation" in pages and "segment_retention_summary" in pages


def _plant(source: Path, slot, table: str, column: str, value: float) -> str:
    """Copy a Spark build into ``slot`` and set ``column`` of one row of ``marts.<table>`` to ``value``
    (the table's files are rewritten as one new Parquet file); the planted row's key."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    spark_engine._copy_warehouse(source, slot.target)
    folder = slot.target / "marts.db" / table
    frame = pq.read_table(folder)
    keys = frame.column("customer_record_id").to_pylist()
    row = keys.index(sorted(keys)[len(keys) // 2])
    values = frame.column(column).to_pylist()
    values[row] = value
    frame = frame.set_column(frame.schema.get_field_index(column), column, pa.array(values, type=pa.float64()))
    for part in folder.glob("*.parquet"):
        part.unlink()  # a hard link to the source build's file: unlinked, never written through
    pq.write_table(frame, folder / "part-00000-planted.parquet")
    return str(keys[row])


def test_a_bad_value_in_a_spark_mart_fails_the_gx_spark_checks_and_stops_run(builds, tmp_path, monkeypatch, capsys):
    """`segfit run --engine spark` on a build whose mart holds one retention probability of 1.5: the check
    fails in GX's Spark datasource, names the row, and nothing is published (the failed build and its checks
    page are kept). The dbt build is replaced by a copy of the case's Spark build with the planted value."""
    from python_analysis import cli

    case = _selected()[0]
    _, spark, options = builds(case)
    planted: dict[str, str] = {}

    def build_candidate(options, published, force=False, tests=True):
        slot = spark_engine.new_slot(published)
        planted["key"] = _plant(spark.resolve(), slot, "customer_segment_fit", "retention_probability", 1.5)
        return slot

    results = []
    real_checks = spark_engine.run_checks_on

    def run_checks_on(*args, **kwargs):
        results.append(real_checks(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(spark_engine, "build_candidate", build_candidate)
    monkeypatch.setattr(spark_engine, "run_checks_on", run_checks_on)
    published, out = tmp_path / "warehouse", tmp_path / "report"
    code = cli.main(["run", "--engine", "spark", "--warehouse", str(published), "--out", str(out),
                     "--customers", str(SHARED_EXTRACT)])
    assert code == cli.EXIT_CHECKS_FAILED
    (result,) = results
    assert result.gx_batches["customer_segment_fit"] == "SparkDataFrame"
    label = f"customer_record_id={planted['key']}: retention_probability=1.5"
    failed = [e for e in result.errors if e.table == "customer_segment_fit" and e.column == "retention_probability"]
    assert [(e.expectation_type, e.unexpected_count, e.offending) for e in failed] == [
        ("expect_column_values_to_be_between", 1, [label])]
    assert label in capsys.readouterr().out
    assert not published.exists() and not (out / "report.md").exists()
    assert (tmp_path / "warehouse.failed" / "marts.db" / "customer_segment_fit").is_dir()
    page = (tmp_path / "report.failed" / steps.CHECKS_PAGE).read_text(encoding="utf-8")
    assert label in page and ">failed<" in page
