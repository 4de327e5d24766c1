"""The warehouse file: where it is, running dbt on it, and reading and writing its tables.

How a build reaches readers (a new file per build, swapped in by one rename) is ``publishing``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import duckdb
import pandas as pd

from python_analysis.errors import SegfitError
from python_analysis.inputs import validate_control_free

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_WAREHOUSE = "warehouse/segfit.duckdb"
dbt_log = logging.getLogger(__name__ + ".dbt")  # dbt's own output, line by line
DBT_TARGET = "prod"  # profiles/profiles.yml: the CLI's builds; plain dbt defaults to `dev`

MARTS = (
    "customer_segment_fit",
    "classification_anomalies",
    "segment_retention_summary",
    "anomaly_feature_comparison",
    "seasonal_distribution",
    "anomaly_crosstabs",
    "anomaly_rule_lift",
    "data_quality_issues",
    "input_row_reconciliation",
    "duplicate_customer_keys",
)
CHECKED_INPUTS = ("int_customers_validated", "int_transactions_validated")
# read by the report besides MARTS: the run metadata and the changes since the previous build (not checked by GX)
REPORT_ONLY_MARTS = ("build_metadata", "customer_fit_changes")


def resolve_warehouse_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The one absolute warehouse path dbt and Python both use.

    Order: the explicit path, then ``SEGFIT_DUCKDB_PATH``, then ``warehouse/segfit.duckdb``. A relative
    path is resolved against the current working directory, once, here.
    """
    raw = os.fspath(path) if path else os.environ.get("SEGFIT_DUCKDB_PATH") or DEFAULT_WAREHOUSE
    checked = validate_control_free(raw, "warehouse path")
    # absolute, but the last part is not resolved: the published path is a link to the current build
    return Path(os.path.abspath(Path(checked).expanduser()))


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


# Set by the CLI for one build only (the input paths, the build history comes from, the inputs' sizes and
# hashes); never inherited from the caller's environment.
BUILD_ENVIRONMENT = ("SEGFIT_CUSTOMERS_PATH", "SEGFIT_TRANSACTIONS_PATH", "SEGFIT_PREVIOUS_BUILD",
                     "SEGFIT_INPUT_FINGERPRINTS")


def dbt_environment(database_path: Path, build: Mapping[str, str] | None = None) -> dict[str, str]:
    """dbt's environment: the file to build, plus what this build knows (``BUILD_ENVIRONMENT``)."""
    env = {k: v for k, v in os.environ.items() if k not in BUILD_ENVIRONMENT}
    unknown = set(build or {}) - set(BUILD_ENVIRONMENT)
    if unknown:
        raise ValueError(f"not a build environment variable: {sorted(unknown)}")
    env.update(build or {})
    env.update(
        {
            "SEGFIT_DUCKDB_PATH": str(database_path),
            "DO_NOT_TRACK": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_PROFILES_DIR": str(PROJECT_DIR / "profiles"),
            "DBT_PROJECT_DIR": str(PROJECT_DIR),
        }
    )
    # dbt's target/ and logs/ belong to this build (its manifest describes this file), so two builds, or a
    # build and a plain `dbt` command in the checkout, never overwrite each other's artifacts. A caller's own
    # DBT_TARGET_PATH / DBT_LOG_PATH (the benchmark's) wins.
    env.setdefault("DBT_TARGET_PATH", str(database_path.parent / "dbt_target"))
    env.setdefault("DBT_LOG_PATH", str(Path(env["DBT_TARGET_PATH"]) / "logs"))
    return env


def run_dbt(args: list[str], database_path: Path, *, build: Mapping[str, str] | None = None) -> int:
    """Run one dbt command against ``database_path``, streaming its output to the ``dbt`` logger."""
    command = [dbt_executable(), *args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR / "profiles"),
               "--target", DBT_TARGET]
    process = subprocess.Popen(  # noqa: S603 - fixed executable, validated arguments
        command,
        cwd=PROJECT_DIR,
        env=dbt_environment(database_path, build),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            dbt_log.info("%s", line.rstrip())
        return process.wait()
    except BaseException:
        # Ctrl-C, SIGTERM or an error here: never leave dbt running on its own
        stop_process(process)
        raise


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a child politely, then for certain."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection that is always closed (so the file is released)."""
    if not path.is_file():
        raise SegfitError(f"no warehouse at {path}: run `segfit build` first")
    con = duckdb.connect(str(path), read_only=True)
    try:
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def bounded_read_only(path: Path, spill_prefix: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection with DuckDB's memory limit (``SEGFIT_DUCKDB_MEMORY_LIMIT``, default 1GB) that
    spills beyond it to a private temporary directory, removed afterwards; no progress bar."""
    memory_limit = os.environ.get("SEGFIT_DUCKDB_MEMORY_LIMIT", "1GB")
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", memory_limit, flags=re.IGNORECASE):
        raise SegfitError(f"SEGFIT_DUCKDB_MEMORY_LIMIT must look like 1GB or 512MB, got {memory_limit!r}")
    with read_only(path) as con, tempfile.TemporaryDirectory(prefix=spill_prefix) as spill:
        con.execute("set memory_limit = ?", [memory_limit])
        con.execute("set temp_directory = ?", [spill])
        con.execute("set enable_progress_bar = false")
        yield con


def read_tables(path: Path, tables: Mapping[str, str],
                order_by: Mapping[str, str] | None = None) -> dict[str, pd.DataFrame]:
    """Read ``{name: 'schema.table'}`` into DataFrames through one read-only connection; ``order_by`` maps a
    name to the (fixed, trusted) column its rows are read ordered by."""
    frames = {}
    order_by = order_by or {}
    with read_only(path) as con:
        for name, relation in tables.items():
            order = f" order by {order_by[name]}" if name in order_by else ""
            frames[name] = _fetch_frame(con.execute(f"select * from {relation}{order}"))  # noqa: S608 - fixed names
    return frames


def _fetch_frame(result: duckdb.DuckDBPyConnection, vectors_per_chunk: int = 10) -> pd.DataFrame:
    """Fetch a result in chunks: the peak is one chunk above the frame, not a full second copy.

    (One ``.df()`` of a 1M-row mart peaked at 2.1 GB; chunked fetching at 1.3 GB, same dtypes.)
    """
    chunks = []
    while True:
        chunk = result.fetch_df_chunk(vectors_per_chunk)
        if not len(chunk):
            break
        chunks.append(chunk)
    if not chunks:
        return chunk
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


# The row order the report reads the record-grain marts in: the input's order (a unique, engine-independent
# key). A table has no row order of its own, and the report's cross-validation folds follow the row order,
# so without it the same marts stored by another engine (Spark writes its rows in partition order) would
# give other folds and other scores.
READ_ORDER: dict[str, str] = {
    "customer_segment_fit": "source_row_number",
    "classification_anomalies": "anomaly_rank",
}


def read_marts(path: Path) -> dict[str, pd.DataFrame]:
    """The marts the report reads, in ``READ_ORDER``, checked against the dbt contracts of the build that
    wrote them."""
    from python_analysis import contracts

    marts = read_tables(path, {name: f"marts.{name}" for name in MARTS + REPORT_ONLY_MARTS}, order_by=READ_ORDER)
    contracts.require_columns(marts, contracts.for_build(path))
    return marts


@contextlib.contextmanager
def checked_sources(path: Path) -> Iterator[tuple[dict[str, object], duckdb.DuckDBPyConnection]]:
    """The marts and the validated inputs as chunk-readable sources for the checks, over one read-only
    connection with DuckDB's memory limit (``SEGFIT_DUCKDB_MEMORY_LIMIT``, default 1GB; beyond it the
    uniqueness queries spill to a private temporary directory). Nothing is loaded here: the checks stream
    each table in bounded chunks (``checks.RelationSource``)."""
    from python_analysis.checks import RelationSource

    with bounded_read_only(path, "segfit-check-spill-") as con:
        relations = {name: f"marts.{name}" for name in MARTS}
        relations.update({name: f"intermediate.{name}" for name in CHECKED_INPUTS})
        yield {name: RelationSource(con, relation) for name, relation in relations.items()}, con


def write_analysis_tables(path: Path, frames: Mapping[str, pd.DataFrame]) -> None:
    """Replace tables in schema ``analysis`` of a warehouse file we own for writing."""
    with contextlib.closing(duckdb.connect(str(path))) as con:
        con.execute("create schema if not exists analysis")
        for name, frame in frames.items():
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                raise SegfitError(f"bad analysis table name {name!r}")
            con.register("frame_to_write", frame)
            con.execute(f"create or replace table analysis.{name} as select * from frame_to_write")  # noqa: S608
            con.unregister("frame_to_write")
        con.execute("checkpoint")


# stratified sample of a large mart, for fitting heavy models with bounded memory (see read_stratified_sample)
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def read_stratified_sample(path: Path, table: str = "customer_segment_fit", *, max_rows: int = 200_000,
                           strata: tuple[str, ...] = ("profitability_segment", "is_classification_anomaly"),
                           key: str = "customer_record_id", seed: int = 0
                           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """At most ``max_rows`` rows of ``marts.<table>``, sampled in SQL so that only the sample reaches pandas.

    Stratified: each stratum (a combination of ``strata`` values, null included) keeps
    ``ceil(max_rows * stratum_rows / all_rows)`` of its rows, so every stratum - a rare anomaly group of a
    small segment too - is present in proportion, with at least one row. Within a stratum the rows with
    the smallest ``hash(key, seed)`` are kept: the same warehouse and seed give the same sample. When the
    table has at most ``max_rows`` rows, all of it is returned. Returns (sample, strata table) where the
    strata table has, per stratum, ``population_rows`` and ``sample_rows``: what a report states next to a
    figure computed from the sample (the sum of ``sample_rows`` can exceed ``max_rows`` by at most the
    number of strata, from rounding up).
    Long: one SQL sampling query and its checks (#11).
    """
    for name in (table, key, *strata):
        if not _NAME.fullmatch(name):
            raise SegfitError(f"bad table or column name {name!r}")
    if max_rows < 1:
        raise SegfitError("max_rows must be >= 1")
    relation = f"marts.{table}"
    by = ", ".join(strata) or "1"
    partition = f"partition by {by}" if strata else ""
    # names are checked above; numbers are bound as parameters
    # the window runs over the key and strata columns only; the wide rows are joined back for the sample
    sql = f"""
        with ranked as (
            select {key} as _key,
                count(*) over ({partition}) as _stratum_rows,
                count(*) over () as _all_rows,
                row_number() over ({partition} order by hash({key}, ?::bigint), {key}) as _rank
            from {relation}
        ),
        chosen as (
            select _key from ranked
            where _all_rows <= ? or _rank <= ceil(? * _stratum_rows / _all_rows)
        )
        select src.*
        from {relation} as src
        inner join chosen on src.{key} = chosen._key
        order by src.{key}
    """  # noqa: S608
    strata_sql = f"""
        select {', '.join(strata) + ',' if strata else ''} count(*) as population_rows
        from {relation} {'group by ' + by if strata else ''}
    """  # noqa: S608
    with bounded_read_only(path, "segfit-sample-spill-") as con:
        sample = _fetch_frame(con.execute(sql, [seed, max_rows, max_rows]))
        population = con.execute(strata_sql).df()
    if strata:
        taken = sample.groupby(list(strata), dropna=False).size().rename("sample_rows").reset_index()
        population = population.merge(taken, on=list(strata), how="left")
    else:
        population["sample_rows"] = len(sample)
    population["sample_rows"] = population["sample_rows"].fillna(0).astype("int64")
    return sample, population
