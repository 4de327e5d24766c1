"""Data-quality checks on the segfit inputs-after-staging and marts, as great-expectations suites in code.

One expectation suite per table (``expectation_suites``), run with GX's **pandas** datasource (``run_checks``).
GX's SQL datasource is not used: on DuckDB it reports every expectation as failed with an IndexError hidden
in ``exception_info``. The column lists and type checks are generated from the dbt YAML (``contract_columns``).

Bounded memory and time: a table is a DataFrame or a ``RelationSource`` (a DuckDB table or view). A table
of at most ``chunk_cells`` cells is one GX batch with its whole suite. A larger ``RelationSource`` whose
expectations all have a SQL form (``SQL_ROW_LEVEL``, ``TABLE_LEVEL``; derived columns in
``SQL_DERIVATIONS``) is validated in SQL over every row (``_sql_row_level``: one scan counts the unexpected
rows of every expectation, with GX's pandas semantics - missing = null or NaN); it is listed in
``CheckReport.validated_in_sql`` and is not in Data Docs. Any other large table is validated in chunks, each
chunk its own GX batch with every row-level expectation. Either way the expectations that need the whole
table (uniqueness, row count, mean, sum) are computed by segfit over the whole table (uniqueness in SQL, via
candidates found by sorting) and reported in the same form.

Rules of the run:

* every expectation carries ``meta["severity"]`` = ``"error"`` or ``"warning"``; a failed expectation goes to
  ``CheckReport.errors`` or ``CheckReport.warnings``;
* anything that *raises* (inside GX or while preparing a frame, e.g. a column an expectation needs is
  missing) or any result with ``exception_info.raised_exception`` is an error of the check run itself:
  ``ChecksError`` is raised, it is never reported as a failed expectation;
* tables missing from the mapping are skipped; on an empty table the column-map expectations pass
  vacuously and expectations marked ``meta["nonempty_only"]`` (aggregates such as a mean) are skipped;
* cross-table checks use GX suite parameters (``{"$PARAMETER": name}``) resolved from the other tables at
  run time (see ``PARAMETERS``); an expectation whose parameter cannot be resolved (other table missing,
  value null) is skipped;
* some checks validate derived columns added to a copy of the frame before validation (``q_share_sum``,
  ``expected_flag``, ...): ``derived_frame`` shows exactly what is validated.

Data Docs: when ``data_docs_dir`` is given, the run uses a *file-backed* GX context rooted in a temporary
directory, with one local site (``SiteBuilder`` + ``TupleFilesystemStoreBackend``) whose base_directory is
``data_docs_dir``; every validation result is stored and ``context.build_data_docs()`` renders the real GX
Data Docs (``index.html``, ``expectations/``, ``validations/``, ``static/``). Nothing is fetched while
building; note that the GX HTML pages themselves link CSS/JS from public CDNs, so they look unstyled when
opened offline. Without ``data_docs_dir`` an ephemeral (in-memory) context is used.

On a Spark build the same suites run with GX's **Spark** datasource instead (``run_checks_spark`` in
``spark``): every expectation evaluated by Spark over every row, nothing collected to the driver.

One concept per module: ``contract`` (column kinds from the dbt YAML, keys, suite parameters), ``results``
(configuration, findings, the report), ``suites`` (the expectations), ``derived`` (derived check columns),
``sources`` (frames and DuckDB relations read in chunks), ``offending`` (reading GX results),
``table_level`` (whole-table expectations), ``sql`` (row-level expectations in SQL), ``gx_batches`` (the GX
context and one batch) and ``run`` (``run_checks``). The names below are the package's interface.
"""

from __future__ import annotations

from .contract import (
    BOOL,
    COLUMNS,
    COMPARISON_FEATURES,
    CONTRACT_FILES,
    DBT_TYPE_KINDS,
    FLOAT,
    INT,
    KEYS,
    PARAMETERS,
    PROJECT_DIR,
    QUARTERS,
    SEVERITIES,
    SPARK_TYPE_LISTS,
    TABLES,
    TEXT,
    THRESHOLD_MODES,
    TIMESTAMP,
    TYPE_LISTS,
    contract_columns,
)
from .derived import DERIVATIONS, derived_frame, expected_anomaly_flag
from .gx_batches import import_great_expectations
from .results import CheckConfig, CheckReport, ChecksError, FailedExpectation
from .run import run_checks
from .sources import (
    CHUNK_CELLS_ENV,
    DEFAULT_CHUNK_CELLS,
    FrameSource,
    RelationSource,
    Source,
    chunk_cells_from_env,
    resolve_parameters,
)
from .spark import SPARK_DERIVATIONS, SparkSource, run_checks_spark, spark_derived_frame
from .sql import SQL_DERIVATIONS, SQL_FLAG_DIVISORS, SQL_ROW_LEVEL
from .suites import expectation_suites
from .table_level import TABLE_LEVEL

__all__ = ['BOOL', 'CHUNK_CELLS_ENV', 'COLUMNS', 'COMPARISON_FEATURES', 'CONTRACT_FILES', 'CheckConfig', 'CheckReport', 'ChecksError', 'DBT_TYPE_KINDS', 'DEFAULT_CHUNK_CELLS', 'DERIVATIONS', 'FLOAT', 'FailedExpectation', 'FrameSource', 'INT', 'KEYS', 'PARAMETERS', 'PROJECT_DIR', 'QUARTERS', 'RelationSource', 'SEVERITIES', 'SPARK_DERIVATIONS', 'SPARK_TYPE_LISTS', 'SparkSource', 'SQL_DERIVATIONS', 'SQL_FLAG_DIVISORS', 'SQL_ROW_LEVEL', 'Source', 'TABLES', 'TABLE_LEVEL', 'TEXT', 'THRESHOLD_MODES', 'TIMESTAMP', 'TYPE_LISTS', 'chunk_cells_from_env', 'contract_columns', 'derived_frame', 'expectation_suites', 'expected_anomaly_flag', 'import_great_expectations', 'resolve_parameters', 'run_checks', 'run_checks_spark', 'spark_derived_frame']
