"""Where the warehouse file is: the project directory and the one absolute warehouse path dbt and Python both use."""

from __future__ import annotations

import os
from pathlib import Path

from python_analysis.warehouse.inputs import validate_control_free

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_WAREHOUSE = "warehouse/segfit.duckdb"



def resolve_warehouse_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The one absolute warehouse path dbt and Python both use.

    Order: the explicit path, then ``SEGFIT_DUCKDB_PATH``, then ``warehouse/segfit.duckdb``. A relative
    path is resolved against the current working directory, once, here.
    """
    raw = os.fspath(path) if path else os.environ.get("SEGFIT_DUCKDB_PATH") or DEFAULT_WAREHOUSE
    checked = validate_control_free(raw, "warehouse path")
    # absolute, but the last part is not resolved: the published path is a link to the current build
    return Path(os.path.abspath(Path(checked).expanduser()))
