"""Running the checks: every table through GX batches, SQL or chunks, collected into one ``CheckReport``."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .contract import KEYS
from .derived import derived_frame
from .gx_batches import _escape_stored_results, _make_context, _parameters_of, _validate
from .offending import _offending, _target_columns
from .results import CheckConfig, CheckReport, ChecksError, FailedExpectation
from .sources import RelationSource, Source, _as_source, chunk_cells_from_env, resolve_parameters
from .sql import _sql_checkable, _sql_row_level, _with_derived
from .suites import expectation_suites
from .table_level import TABLE_LEVEL, _Finding, _sql_totals, _table_level, _Totals


def run_checks(tables: Mapping[str, pd.DataFrame | Source], config: CheckConfig,
               data_docs_dir: Path | None = None, chunk_cells: int | None = None) -> CheckReport:
    """Validate every known table present in ``tables`` with its suite; see the module docstring.

    A table is a DataFrame or a ``RelationSource``. A table of more than ``chunk_cells`` cells (rows x
    columns; default ``SEGFIT_CHECK_CHUNK_CELLS`` or 4,000,000) is validated chunk by chunk: every
    row-level expectation runs on every chunk, each chunk its own GX batch, and the table-level ones
    (uniqueness, row count, mean, sum) are computed over the whole table (uniqueness in SQL)."""
    cells = chunk_cells if chunk_cells is not None else chunk_cells_from_env()
    if cells < 1:
        raise ValueError("chunk_cells must be >= 1")
    if data_docs_dir is None:
        return _run(tables, config, None, None, cells)
    data_docs_dir = Path(data_docs_dir).resolve()
    data_docs_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="segfit-gx-") as root:
        return _run(tables, config, Path(root), data_docs_dir, cells)



def _run(tables: Mapping[str, pd.DataFrame | Source], config: CheckConfig, root: Path | None,  # noqa: C901 - GX setup, SQL and chunked validation and error collection in one place (owned by #11)
         data_docs_dir: Path | None, chunk_cells: int) -> CheckReport:
    """Long: GX setup, the SQL and chunked paths and the error collection share one context (#11)."""
    import great_expectations as gx

    suites = expectation_suites(config)
    sources = {name: _as_source(table) for name, table in tables.items()}
    try:
        parameters = resolve_parameters(sources)
    except ChecksError:
        raise
    except Exception as exc:  # noqa: BLE001 - a SQL error while resolving is a failure of the run
        raise ChecksError(f"could not resolve the cross-table parameters: {exc}") from exc
    errors: list[FailedExpectation] = []
    warnings: list[FailedExpectation] = []
    evaluated = skipped = 0
    validated_in_sql: dict[str, int] = {}
    try:
        context = _make_context(root, data_docs_dir)
        datasource = context.data_sources.add_pandas("segfit")
    except Exception as exc:  # noqa: BLE001 - any GX failure is a failure of the run
        raise ChecksError(f"could not set up great-expectations: {exc}") from exc

    def definition(name: str, expectations: list[Any]) -> tuple[Any, Any]:
        try:
            suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
            batch = datasource.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
            validation = context.validation_definitions.add(
                gx.ValidationDefinition(name=name, data=batch, suite=suite))
        except Exception as exc:  # noqa: BLE001
            raise ChecksError(f"{name}: great-expectations raised {type(exc).__name__}: {exc}") from exc
        return suite, validation

    for table, expectations in suites.items():
        if table not in sources:
            continue
        source = sources[table]
        rows = max(1, chunk_cells // max(1, len(source.columns)))
        table_rows = source.row_count() if isinstance(source, RelationSource) else 0
        in_sql = (isinstance(source, RelationSource) and _sql_checkable(table, expectations, config)
                  and table_rows > rows)
        if in_sql:
            first, second, chunks = pd.DataFrame(), None, iter(())
        else:
            chunks = iter(source.chunks(rows))
            first = next(chunks)
            second = next(chunks, None)
            table_rows = len(first)
        runnable = []
        for expectation in expectations:
            if not _parameters_of(expectation) <= parameters.keys():
                skipped += 1
            elif expectation.meta.get("nonempty_only") and table_rows == 0:
                skipped += 1
            else:
                runnable.append(expectation)
        if not runnable:
            continue
        findings: dict[int, _Finding] = {}

        if in_sql:  # large: every expectation over every row in SQL, no pandas at all
            source = _with_derived(source, table, config)
            row_level = [(i, e) for i, e in enumerate(runnable) if e.expectation_type not in TABLE_LEVEL]
            whole = [(i, e) for i, e in enumerate(runnable) if e.expectation_type in TABLE_LEVEL]
            found, totals = _sql_row_level(row_level, source, table, parameters, config, source.column_types())
            findings.update(found)
            _sql_totals(source, table, {e.configuration.kwargs["column"] for _, e in whole if e.expectation_type
                                        in ("expect_column_mean_to_be_between", "expect_column_sum_to_be_between")},
                        totals)
            for position, expectation in whole:
                finding = _table_level(expectation, source, table, totals, parameters, config)
                if finding is not None:
                    findings[position] = finding
            validated_in_sql[table] = totals.rows
        elif second is None:  # the whole table is one chunk: one GX batch with every expectation
            frame = derived_frame(table, first, config)
            suite, validation = definition(table, runnable)
            for position, item in _validate(validation, suite, table, frame, parameters, len(runnable)).items():
                if not item.success:
                    offending, count = _offending(item.result or {}, item.expectation_config.kwargs, frame,
                                                  KEYS[table], config.max_offending_keys)
                    findings[position] = _Finding(offending, count)
        else:  # chunked: row-level expectations per chunk, table-level ones over the whole table
            row_level = [(i, e) for i, e in enumerate(runnable) if e.expectation_type not in TABLE_LEVEL]
            whole = [(i, e) for i, e in enumerate(runnable) if e.expectation_type in TABLE_LEVEL]
            summed = {e.configuration.kwargs["column"] for _, e in whole
                      if e.expectation_type in ("expect_column_mean_to_be_between", "expect_column_sum_to_be_between")}
            suite, validation = (definition(table, [e for _, e in row_level]) if row_level else (None, None))
            totals = _Totals()
            start = 0
            for chunk in _chain(first, second, chunks):
                frame = derived_frame(table, chunk, config)
                totals.add(frame, summed)
                if suite is not None:
                    results = _validate(validation, suite, table, frame, parameters, len(row_level),
                                        run_name=f"{table} rows {start + 1}-{start + len(frame)}")
                    for position, item in results.items():
                        if item.success:
                            continue
                        offending, count = _offending(item.result or {}, item.expectation_config.kwargs, frame,
                                                      KEYS[table], config.max_offending_keys)
                        found = findings.setdefault(row_level[position][0], _Finding())
                        for label in offending:
                            if label not in found.offending and len(found.offending) < config.max_offending_keys:
                                found.offending.append(label)
                        if count is not None and "unexpected_count" in (item.result or {}):
                            found.count = (found.count or 0) + count
                        elif found.count is None:
                            found.count = count
                start += len(frame)
                del frame, chunk
            for position, expectation in whole:
                finding = _table_level(expectation, source, table, totals, parameters, config)
                if finding is not None:
                    findings[position] = finding

        evaluated += len(runnable)
        for position in sorted(findings):
            failed = failed_expectation(table, runnable[position].configuration, findings[position].offending,
                                        findings[position].count)
            (warnings if failed.severity == "warning" else errors).append(failed)

    return CheckReport(errors=errors, warnings=warnings, evaluated=evaluated,
                       data_docs_index=data_docs_index(context, data_docs_dir),
                       skipped=skipped, validated_in_sql=validated_in_sql)


def failed_expectation(table: str, configuration: Any, offending: list[str],
                       unexpected_count: int | None) -> FailedExpectation:
    """The failure of one expectation, as every engine's check path reports it (severity from its meta)."""
    return FailedExpectation(
        table=table,
        expectation_type=configuration.type,
        column=",".join(_target_columns(configuration.kwargs)) or None,
        severity=(configuration.meta or {}).get("severity", "error"),
        offending=offending,
        unexpected_count=unexpected_count,
    )


def data_docs_index(context: Any, data_docs_dir: Path | None) -> Path | None:
    """Build the GX Data Docs site of ``context`` into ``data_docs_dir`` and return its index page (None when
    no directory was asked for). A GX failure, or a build without an index page, is a ChecksError."""
    if data_docs_dir is None:
        return None
    try:
        _escape_stored_results(context)
        context.build_data_docs(site_names=["segfit"])
    except Exception as exc:  # noqa: BLE001
        raise ChecksError(f"building Data Docs failed: {exc}") from exc
    index = data_docs_dir / "index.html"
    if not index.is_file():
        raise ChecksError(f"Data Docs were built but {index} is missing")
    return index


def _chain(first: pd.DataFrame, second: pd.DataFrame, rest: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    yield first
    yield second
    yield from rest
