"""The warehouse file: where it is, running dbt on it, reading and writing its tables, publishing it.

One concept per module:

* ``paths``: the project directory and the warehouse path dbt and Python both use;
* ``inputs``: the input files, checked before dbt sees them (readable, parseable, required columns);
* ``dbt_runner``: running dbt on a warehouse file (its environment and its output);
* ``connections``: read-only connections, and memory-bounded ones that spill;
* ``reading``: the marts the report and the checks read, checked against the dbt contracts;
* ``sampling``: a stratified sample of a large mart, drawn in SQL;
* ``writing``: the report's model tables written back into schema ``analysis``;
* ``publishing``: how a build, and the report written from it, reach readers (a new file per build,
  swapped in by one rename), and the up-front checks of the targets.

The names below are the package's interface (``warehouse.read_marts``, ``warehouse.run_dbt``, ...).
"""

from __future__ import annotations

from .connections import bounded_read_only, read_only
from .dbt_runner import (
    BUILD_ENVIRONMENT,
    DBT_TARGET,
    dbt_environment,
    dbt_executable,
    dbt_log,
    run_dbt,
    stop_process,
)
from .paths import DEFAULT_WAREHOUSE, PROJECT_DIR, resolve_warehouse_path
from .reading import (
    CHECKED_INPUTS,
    MARTS,
    READ_ORDER,
    REPORT_ONLY_MARTS,
    checked_sources,
    count_rows,
    read_marts,
    read_marts_bounded,
    read_tables,
)
from .sampling import read_stratified_sample
from .writing import write_analysis_tables

__all__ = [
    "BUILD_ENVIRONMENT", "CHECKED_INPUTS", "DBT_TARGET", "DEFAULT_WAREHOUSE", "MARTS", "PROJECT_DIR",
    "READ_ORDER", "REPORT_ONLY_MARTS", "bounded_read_only", "checked_sources", "dbt_environment",
    "count_rows", "dbt_executable", "dbt_log", "read_marts", "read_marts_bounded", "read_only", "read_stratified_sample", "read_tables",
    "resolve_warehouse_path", "run_dbt", "stop_process", "write_analysis_tables",
]
