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
