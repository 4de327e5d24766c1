"""ruff and sqlfluff are part of the test run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from python_analysis import warehouse

BIN = Path(sys.executable).parent


def test_ruff_is_clean():
    result = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=warehouse.PROJECT_DIR, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sqlfluff_is_clean(demo_warehouse, tmp_path):
    # the dbt templater compiles the models, which probes the demo seeds: give it its own copy
    copy = tmp_path / "lint.duckdb"
    shutil.copyfile(demo_warehouse, copy)
    env = warehouse.dbt_environment(copy)
    result = subprocess.run([str(BIN / "sqlfluff"), "lint", "models", "snapshots"],
                            cwd=warehouse.PROJECT_DIR, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
