"""Plain dbt from a fresh clone, and the slim-CI recipe (dev, prod and ci targets), as the README gives them
("Using segfit as a dbt project"): debug, compile, lint, unit tests, build --empty, build, source
freshness, a partial run, and slim CI.

The "fresh clone" is the repository's tracked files copied into an empty folder: no `warehouse/` file,
no `target/`, no `.venv` inside it. dbt runs from that folder with only the README's environment. The
tests of this module share the clone and run in file order: the first ones find an empty warehouse.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from python_analysis import warehouse
from tests.builds import copy_tracked


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    return copy_tracked(tmp_path_factory.mktemp("clone") / "segfit")


def _dbt(clone: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SEGFIT_", "DBT_"))}
    environment.update({"DO_NOT_TRACK": "1", "DBT_PROFILES_DIR": "profiles", **env})
    return subprocess.run([warehouse.dbt_executable(), *args], cwd=clone, env=environment, capture_output=True,
                          text=True, timeout=900)


def _make_lint(clone: Path) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    """`make lint` in the clone with this test run's virtualenv (its stamp counts as up to date), and
    sqlfluff's result for each file it linted ({path: {violations, statistics}})."""
    venv = Path(sys.executable).parent.parent
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SEGFIT_", "DBT_"))}
    result = subprocess.run(["make", "-o", str(venv / ".installed"), "lint", f"VENV={venv}", "LINT_FORMAT=json"],
                            cwd=clone, env={**environment, "DO_NOT_TRACK": "1"}, capture_output=True, text=True,
                            timeout=900)
    files = {}
    for line in result.stdout.splitlines():
        if line.startswith("[{"):
            files.update({f["filepath"]: f for f in json.loads(line)})
    return result, files


def _tables(path: Path, schema: str) -> set[str]:
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        rows = con.execute("select table_name from information_schema.tables where table_schema = ?",
                           [schema]).fetchall()
    return {r[0] for r in rows}


def test_a_fresh_clone_compiles_lints_and_runs_unit_tests_without_data(fresh_clone):
    """Issue 13, defects 1-3: compile, `make lint` and the unit tests on an empty warehouse."""
    database = fresh_clone / "warehouse" / "dev.duckdb"
    assert not database.exists()
    compiled = _dbt(fresh_clone, "compile")  # before: "raw.demo_customers does not exist"
    assert compiled.returncode == 0, compiled.stdout[-3000:]
    staged = (fresh_clone / "target" / "compiled" / "segfit" / "models" / "staging" / "stg_customers.sql").read_text()
    assert "retention_probability" in staged and "demo_customers" in staged
    lint, linted = _make_lint(fresh_clone)
    assert lint.returncode == 0, lint.stdout[-3000:] + lint.stderr[-2000:]
    # staging used to be skipped silently (its compile needed data), macros/ was never linted
    for name in ("models/staging/stg_customers.sql", "models/staging/stg_transactions.sql",
                 "macros/segfit_inputs.sql", "macros/tests/generic_tests.sql"):
        assert linted[name]["statistics"]["segments"] > 0 and linted[name]["violations"] == [], name
    # the unit tests need their inputs' relations: `dbt build --empty` makes every relation with no rows
    empty = _dbt(fresh_clone, "build", "--empty")
    assert empty.returncode == 0, empty.stdout[-3000:]
    with contextlib.closing(duckdb.connect(str(database), read_only=True)) as con:
        assert con.execute("select count(*) from marts.customer_segment_fit").fetchone()[0] == 0
    unit = _dbt(fresh_clone, "test", "--select", "test_type:unit")
    assert unit.returncode == 0, unit.stdout[-3000:]
    results = json.loads((fresh_clone / "target" / "run_results.json").read_text())["results"]
    unit_tests = [r for r in results if r["unique_id"].startswith("unit_test.")]
    assert len(unit_tests) >= 6 and all(r["status"] == "pass" for r in unit_tests)


def test_lint_reports_a_style_error_in_a_macro(fresh_clone, tmp_path):
    """macros/ is linted with every rule but layout.indent (macros/.sqlfluff): a planted error is reported.
    (The jinja templater does not render an uncalled macro's body as SQL, so what it checks there is layout:
    line length, whitespace; the SQL a macro produces is linted in the models that call it.)"""
    macros = tmp_path / "macros"
    shutil.copytree(fresh_clone / "macros", macros)
    shutil.copy2(fresh_clone / ".sqlfluff", tmp_path / ".sqlfluff")
    planted = macros / "segfit_types.sql"
    planted.write_text(planted.read_text() + "\n{% macro segfit_lint_probe() %}\n    {%- set planted = '"
                       + "x" * 120 + "' -%}\n{% endmacro %}\n")
    result = subprocess.run([str(Path(sys.executable).parent / "sqlfluff"), "lint", "macros", "--templater", "jinja"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "segfit_types.sql" in result.stdout and "LT05" in result.stdout, result.stdout


def test_plain_dbt_works_in_a_fresh_clone_and_never_touches_the_published_path(fresh_clone):
    debug = _dbt(fresh_clone, "debug")
    assert debug.returncode == 0, debug.stdout[-3000:]
    build = _dbt(fresh_clone, "build")
    assert build.returncode == 0, build.stdout[-3000:]
    assert "customer_segment_fit" in _tables(fresh_clone / "warehouse" / "dev.duckdb", "marts")
    assert not (fresh_clone / "warehouse" / "segfit.duckdb").exists(), "dev must not write the published path"
    # the README's `dbt snapshot` and `dbt test` on their own, after the build
    snapshot = _dbt(fresh_clone, "snapshot")
    assert snapshot.returncode == 0, snapshot.stdout[-3000:]
    tested = _dbt(fresh_clone, "test")
    assert tested.returncode == 0, tested.stdout[-3000:]
    with contextlib.closing(duckdb.connect(str(fresh_clone / "warehouse" / "dev.duckdb"), read_only=True)) as con:
        customers = con.execute("select count(distinct customer_id) from marts.customer_segment_fit").fetchone()[0]
        current = con.execute("select count(*) from snapshots.customer_segment_fit_history "
                              "where dbt_valid_to is null").fetchone()[0]
    assert current == customers > 0


def test_prod_needs_an_explicit_path(fresh_clone):
    result = _dbt(fresh_clone, "debug", "--target", "prod")
    assert result.returncode != 0
    assert "SEGFIT_DUCKDB_PATH" in result.stdout


def test_slim_ci_builds_only_what_changed_and_reads_the_rest_from_prod(fresh_clone, tmp_path):
    prod = tmp_path / "prod" / "segfit.duckdb"
    prod.parent.mkdir()
    state = tmp_path / "prod_state"
    built = _dbt(fresh_clone, "build", "--target", "prod", "--target-path", str(state),
                 SEGFIT_DUCKDB_PATH=str(prod))
    assert built.returncode == 0, built.stdout[-3000:]
    model = fresh_clone / "models" / "marts" / "classification_anomalies.sql"
    original = model.read_text()
    model.write_text(original + "\n-- a change under review\n")
    ci = tmp_path / "ci.duckdb"
    try:
        result = _dbt(fresh_clone, "build", "--target", "ci", "-s", "state:modified+", "--defer", "--state",
                      str(state), "--target-path", str(tmp_path / "ci_target"),
                      SEGFIT_CI_DUCKDB_PATH=str(ci), SEGFIT_PROD_DUCKDB_PATH=str(prod))
    finally:
        model.write_text(original)
    assert result.returncode == 0, result.stdout[-3000:]
    # only the changed model was built in CI; its parent was read from prod through the attached catalog
    assert _tables(ci, "marts") == {"classification_anomalies"}
    with contextlib.closing(duckdb.connect(str(ci), read_only=True)) as con:
        ci_rows = con.execute("select count(*) from marts.classification_anomalies").fetchone()[0]
    with contextlib.closing(duckdb.connect(str(prod), read_only=True)) as con:
        prod_rows = con.execute("select count(*) from marts.classification_anomalies").fetchone()[0]
    assert ci_rows == prod_rows > 0


def _write_customers(path: Path, rows: int, tail: str = "") -> Path:
    lines = ["customer_id,profitability_segment,retention_probability"]
    lines += [f"c{i},{'Gold' if i % 2 else 'Tin'},{(i % 97) / 100}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n" + tail)
    return path


def test_inputs_are_sources_and_build_empty_reads_no_rows(fresh_clone, tmp_path):
    """The input files are dbt sources: lineage starts at the file, the demo seeds are not loaded into a
    warehouse built from your files, and `--empty` reads no rows. The file's last line is ragged, after
    the 20,480 rows DuckDB samples for the header, so only reading the whole file finds it."""
    customers = _write_customers(tmp_path / "customers.csv", 30_000, tail="bad,Gold,0.5,EXTRA\n")
    variables = json.dumps({"customers_path": str(customers)})
    database = tmp_path / "empty.duckdb"
    target = tmp_path / "target"
    empty = _dbt(fresh_clone, "build", "--empty", "--vars", variables, "--target-path", str(target),
                 SEGFIT_DUCKDB_PATH=str(database))
    assert empty.returncode == 0, empty.stdout[-3000:]
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest["nodes"]["model.segfit.stg_customers"]["depends_on"]["nodes"] == [
        "source.segfit.segfit_inputs.customers"]
    source = manifest["sources"]["source.segfit.segfit_inputs.customers"]
    assert source["config"]["enabled"] is True
    assert not [n for n in manifest["nodes"] if n.startswith("seed.")], "demo seeds enabled for a user's file"
    with contextlib.closing(duckdb.connect(str(database), read_only=True)) as con:
        schemas = {r[0] for r in con.execute("select distinct table_schema from information_schema.tables")
                   .fetchall()}
        assert con.execute("select count(*) from staging.stg_customers").fetchone()[0] == 0
    assert "raw" not in schemas and "marts" in schemas
    full = _dbt(fresh_clone, "build", "--select", "stg_customers", "--vars", variables, "--target-path",
                str(target), SEGFIT_DUCKDB_PATH=str(tmp_path / "full.duckdb"))
    assert full.returncode != 0 and "30002" in full.stdout, full.stdout[-3000:]


def test_source_freshness_checks_the_latest_transaction_date(fresh_clone, tmp_path):
    customers = _write_customers(tmp_path / "customers.csv", 4)
    today = dt.datetime.now(dt.UTC).date()
    outcomes = {}
    for age_days in (0, 4, 10):
        transactions = tmp_path / f"transactions_{age_days}.csv"
        latest = today - dt.timedelta(days=age_days)
        transactions.write_text("transaction_id,customer_id,transaction_date,amount\n"
                                f"t1,c1,{latest - dt.timedelta(days=30)},10\nt2,c2,{latest},20\nt3,c3,not a date,5\n")
        variables = json.dumps({"customers_path": str(customers), "transactions_path": str(transactions)})
        target = tmp_path / f"target_{age_days}"
        result = _dbt(fresh_clone, "source", "freshness", "--vars", variables, "--target-path", str(target),
                      SEGFIT_DUCKDB_PATH=str(tmp_path / "fresh.duckdb"))
        sources = json.loads((target / "sources.json").read_text())["results"]
        by_id = {r["unique_id"]: r for r in sources}
        outcome = by_id["source.segfit.segfit_inputs.transactions"]
        outcomes[age_days] = (result.returncode, outcome["status"], outcome["max_loaded_at"][:10])
    # warn after 2 days, error after 7 (models/staging/_staging__sources.yml)
    assert outcomes[0] == (0, "pass", str(today))
    assert outcomes[4] == (0, "warn", str(today - dt.timedelta(days=4)))
    assert outcomes[10][:2] == (1, "error")


def test_a_partial_run_without_the_vars_keeps_the_full_builds_configuration(fresh_clone, tmp_path):
    """Issue 13, defect 4: build on your own precomputed CSV, then `dbt build --select marts` without vars.
    The quarter-sum warnings used to vanish (the mart decided from the vars); build_metadata must still
    name the file and grain the marts were built from."""
    customers = tmp_path / "precomputed.csv"
    customers.write_text(
        "customer_id,profitability_segment,retention_probability,transaction_count,"
        "q1_transactions,q2_transactions,q3_transactions,q4_transactions\n"
        "a,Gold,0.9,10,1,2,3,4\nb,Gold,0.5,10,1,1,1,1\nc,Gold,0.4,7,1,2,3,4\nd,Tin,0.2,0,0,0,0,0\n")
    expected = pd.read_csv(customers)
    expected = expected[expected[["q1_transactions", "q2_transactions", "q3_transactions", "q4_transactions"]]
                        .sum(axis=1) != expected["transaction_count"]]
    database = tmp_path / "partial.duckdb"

    def warnings_and_metadata():
        with contextlib.closing(duckdb.connect(str(database), read_only=True)) as con:
            warned = con.execute("select row_key, issue_value from marts.data_quality_issues "
                                 "where column_name = 'q1_transactions..q4_transactions' order by row_key").fetchall()
            metadata = con.execute("select input_label, customer_grain from marts.build_metadata "
                                   "where source = 'customers'").fetchone()
        return warned, metadata

    full = _dbt(fresh_clone, "build", "--vars", json.dumps({"customers_path": str(customers), "customer_grain": "latest"}),
                "--target-path", str(tmp_path / "target"), SEGFIT_DUCKDB_PATH=str(database))
    assert full.returncode == 0, full.stdout[-3000:]
    before = warnings_and_metadata()
    assert before[0] == [(row.customer_id, str(row.q1_transactions + row.q2_transactions + row.q3_transactions
                                                 + row.q4_transactions)) for row in expected.itertuples()]
    assert before[1] == (str(customers), "latest")
    partial = _dbt(fresh_clone, "build", "--select", "marts", "--target-path", str(tmp_path / "target"),
                   SEGFIT_DUCKDB_PATH=str(database))
    assert partial.returncode == 0, partial.stdout[-3000:]
    assert warnings_and_metadata() == before
