"""Plain dbt from a fresh clone, and the slim-CI recipe (dev, prod and ci targets), as the README gives them.

The "fresh clone" is the repository's tracked files copied into an empty folder: no `warehouse/` file,
no `target/`, no `.venv` inside it. dbt runs from that folder with only the README's environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from python_analysis import warehouse


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clone") / "segfit"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=warehouse.PROJECT_DIR, capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        source = warehouse.PROJECT_DIR / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    return root


def _dbt(clone: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SEGFIT_", "DBT_"))}
    environment.update({"DO_NOT_TRACK": "1", "DBT_PROFILES_DIR": "profiles", **env})
    return subprocess.run([warehouse.dbt_executable(), *args], cwd=clone, env=environment, capture_output=True,
                          text=True, timeout=900)


def _tables(path: Path, schema: str) -> set[str]:
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        rows = con.execute("select table_name from information_schema.tables where table_schema = ?",
                           [schema]).fetchall()
    return {r[0] for r in rows}


def test_plain_dbt_works_in_a_fresh_clone_and_never_touches_the_published_path(fresh_clone):
    assert not (fresh_clone / "warehouse" / "dev.duckdb").exists()
    debug = _dbt(fresh_clone, "debug")
    assert debug.returncode == 0, debug.stdout[-3000:]
    build = _dbt(fresh_clone, "build")
    assert build.returncode == 0, build.stdout[-3000:]
    assert "customer_segment_fit" in _tables(fresh_clone / "warehouse" / "dev.duckdb", "marts")
    assert not (fresh_clone / "warehouse" / "segfit.duckdb").exists(), "dev must not write the published path"


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
