"""ruff and sqlfluff are part of the test run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from python_analysis import warehouse

BIN = Path(sys.executable).parent


def test_ruff_is_clean():
    result = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=warehouse.PROJECT_DIR, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# sqlfluff (`make lint`: models, snapshots and macros) runs in a fresh clone on an empty warehouse, which
# proves the staging models and the macros are really linted: tests/test_dbt_environments.py.
