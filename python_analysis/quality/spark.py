"""The checks on a Spark build, with great-expectations' **Spark** datasource (``run_checks_spark``).

The same suites as on DuckDB (``expectation_suites``, generated from the dbt contracts), with the column
types named as Spark sees them (``SPARK_TYPE_LISTS``). Every table is one GX batch of a Spark DataFrame
(``context.data_sources.add_spark`` + a dataframe asset), so every expectation, the row-level ones and the
whole-table ones (uniqueness, row count, mean, sum), is evaluated by Spark over every row. Nothing but
GX's metrics and a bounded number of example rows (``partial_unexpected_count``) reaches the driver: no
``toPandas()``/``collect()`` of a table.

The DataFrame GX validates is the table with the same derived check columns as ``derived_frame`` (as Spark
SQL expressions, ``SPARK_DERIVATIONS``) and NaN read as missing in floating-point columns, which is what
pandas and GX's pandas datasource do, so a value passes or fails alike on both engines.

The result is the same ``CheckReport`` as ``run_checks``: failed expectations by severity with their
unexpected counts and up to ``max_offending_keys`` offending rows named by their keys, in key order (the
first ones GX found, at most ``4 * max_offending_keys``, sorted by key), and ``gx_batches`` records what
GX's validation result says it validated (``"SparkDataFrame"``). The rules are those of ``run_checks``: a
raised or reported GX exception is a ``ChecksError``, never a failed expectation; an expectation whose
parameter cannot be resolved, or an aggregate on an empty table, is skipped.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .contract import KEYS, QUARTERS, SPARK_TYPE_LISTS
from .gx_batches import _by_position, _make_context, _parameters_of
from .offending import _offending, _target_columns, _text
from .results import CheckConfig, CheckReport, ChecksError, FailedExpectation
from .run import data_docs_index, failed_expectation
from .sources import resolve_parameters
from .sql import fit_check_columns
from .suites import expectation_suites


def _q(identifier: str) -> str:
    """A Spark SQL identifier, quoted."""
    return "`" + identifier.replace("`", "``") + "`"


def _number(column: str) -> str:
    """Spark SQL: a column as a double, NaN as null (pandas' to_numeric(...).isna() view of it)."""
    value = f"try_cast({_q(column)} as double)"
    return f"(case when isnan({value}) then null else {value} end)"


def _fit(config: CheckConfig) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """_derive_fit's columns (sql.fit_check_columns in Spark SQL; the null count as bigint, as pandas')."""
    required = (*(f"{q}_share" for q in QUARTERS), "retention_deviation", "segment_avg_retention",
                "is_classification_anomaly")
    columns = fit_check_columns(config, _number, _q, "bround")
    return required, [(name, f"cast({expression} as bigint)" if name == "q_share_nulls" else expression)
                      for name, expression in columns]


def _seasonal(config: CheckConfig) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    means = [f"{q}_share_mean" for q in QUARTERS]
    return (*means, "grouping_level", "profitability_segment"), [
        ("q_share_mean_sum", "(" + " + ".join(_number(m) for m in means) + ")"),
        ("segment_matches_level", f"(coalesce({_q('grouping_level')} = 'overall', false) "
                                  f"= ({_q('profitability_segment')} is null))"),
    ]


def _sum(target: str, *parts: str) -> Callable[[CheckConfig], tuple[tuple[str, ...], list[tuple[str, str]]]]:
    def derive(config: CheckConfig) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
        return parts, [(target, "(" + " + ".join(_q(p) for p in parts) + ")")]

    return derive


def _conflicting(config: CheckConfig) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    possible = " or ".join(f"coalesce({_number(c)} > 1, false)" for c in ("distinct_segments",
                                                                          "distinct_retention_values"))
    flagged = f"coalesce(try_cast({_q('is_conflicting')} as boolean), false)"
    return ("distinct_segments", "distinct_retention_values", "is_conflicting"), [
        ("conflict_is_consistent", f"((not {flagged}) or {possible})"),
    ]


# derived.DERIVATIONS as Spark SQL: (the columns they need, [(derived column, expression)])
SPARK_DERIVATIONS: dict[str, Callable[[CheckConfig], tuple[tuple[str, ...], list[tuple[str, str]]]]] = {
    "customer_segment_fit": _fit,
    "classification_anomalies": _fit,
    "segment_retention_summary": _sum("above_plus_below", "above_count", "below_count"),
    "seasonal_distribution": _seasonal,
    "anomaly_crosstabs": _sum("anomaly_plus_normal", "anomaly_count", "normal_count"),
    "input_row_reconciliation": _sum("clean_plus_rejected", "clean_rows", "rejected_rows"),
    "duplicate_customer_keys": _conflicting,
}


def spark_derived_frame(table: str, frame: Any, config: CheckConfig) -> Any:
    """The Spark DataFrame GX validates for ``table`` (lazy: nothing is computed here): NaN as null in the
    floating-point columns, then the derived check columns of ``SPARK_DERIVATIONS``."""
    from pyspark.sql.types import DoubleType, FloatType

    floats = {f.name for f in frame.schema.fields if isinstance(f.dataType, DoubleType | FloatType)}
    columns = [f"(case when isnan({_q(c)}) then null else {_q(c)} end) as {_q(c)}" if c in floats else _q(c)
               for c in frame.columns]
    derive = SPARK_DERIVATIONS.get(table)
    if derive is not None:
        required, derived = derive(config)
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ChecksError(f"{table}: column(s) {', '.join(missing)} missing from the frame")
        columns += [f"{expression} as {_q(name)}" for name, expression in derived]
    try:
        return frame.selectExpr(*columns)
    except Exception as exc:  # noqa: BLE001 - an analysis error is a failure of the run
        raise ChecksError(f"{table}: could not derive the check columns: {exc}") from exc


class SparkSource:
    """A Spark DataFrame as a source for ``resolve_parameters``: ``query`` runs Spark SQL on a temporary
    view of it (``{t}``); only the (one-row) results reach the driver."""

    def __init__(self, spark: Any, frame: Any, name: str) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ChecksError(f"bad table name {name!r}")
        self.spark = spark
        self.frame = frame
        self.view = f"segfit_checked_{name}"
        frame.createOrReplaceTempView(self.view)

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)

    def query(self, sql: str, columns: list[str], params: list[Any] | None = None) -> list[tuple]:
        rows = self.spark.sql(sql.format(t=self.view), args=list(params) if params else None).collect()
        return [tuple(row) for row in rows]


def run_checks_spark(spark: Any, tables: Mapping[str, Any], config: CheckConfig,
                     data_docs_dir: Path | None = None) -> CheckReport:
    """Validate every known table of ``tables`` (Spark DataFrames) with GX's Spark datasource; see the
    module docstring. ``data_docs_dir``: GX Data Docs, as in ``run_checks``."""
    if data_docs_dir is None:
        return _run_spark(spark, tables, config, None, None)
    data_docs_dir = Path(data_docs_dir).resolve()
    data_docs_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="segfit-gx-") as root:
        return _run_spark(spark, tables, config, Path(root), data_docs_dir)


def _labels(result: Mapping[str, Any], kwargs: Mapping[str, Any], keys: list[str], limit: int) -> list[str]:
    """The offending rows GX returned (``partial_unexpected_index_list``: the key and checked columns),
    sorted by key and labelled as the DuckDB paths label them."""
    rows = [row for row in result.get("partial_unexpected_index_list") or [] if isinstance(row, dict)]
    rows.sort(key=lambda row: tuple((row.get(k) is None, row.get(k)) for k in keys))
    columns = _target_columns(kwargs)
    labels: list[str] = []
    for row in rows:
        label = "/".join(f"{k}={_text(row.get(k))}" for k in keys) or "row"
        extra = [f"{c}={_text(row.get(c))}" for c in columns if c not in keys]
        if extra:
            label += ": " + ", ".join(extra)
        if label not in labels and len(labels) < limit:
            labels.append(label)
    return labels


def _finding(item: Any, keys: list[str], limit: int) -> tuple[list[str], int | None]:
    result = item.result or {}
    kwargs = item.expectation_config.kwargs
    if "partial_unexpected_index_list" in result or "unexpected_count" in result:
        count = result.get("unexpected_count")
        return _labels(result, kwargs, keys, limit), int(count) if count is not None else None
    import pandas as pd

    return _offending(result, kwargs, pd.DataFrame(), tuple(keys), limit)


def _run_spark(spark: Any, tables: Mapping[str, Any], config: CheckConfig,  # noqa: C901 - setup, one batch per table and the error collection, as quality.run._run
               root: Path | None, data_docs_dir: Path | None) -> CheckReport:
    """Long: the GX setup, one Spark batch per table and the error collection share one GX context, as in
    ``quality.run._run``."""
    import great_expectations as gx
    from pyspark import StorageLevel

    suites = expectation_suites(config, SPARK_TYPE_LISTS)
    try:
        sources = {name: SparkSource(spark, frame, name) for name, frame in tables.items() if name in suites}
        parameters = resolve_parameters(sources)
    except ChecksError:
        raise
    except Exception as exc:  # noqa: BLE001 - a Spark SQL error while resolving is a failure of the run
        raise ChecksError(f"could not resolve the cross-table parameters: {exc}") from exc
    try:
        context = _make_context(root, data_docs_dir)
        datasource = context.data_sources.add_spark("segfit")
    except Exception as exc:  # noqa: BLE001 - any GX failure is a failure of the run
        raise ChecksError(f"could not set up great-expectations' Spark datasource: {exc}") from exc
    errors: list[FailedExpectation] = []
    warnings: list[FailedExpectation] = []
    evaluated = skipped = 0
    batches: dict[str, str] = {}
    limit = config.max_offending_keys
    for table, expectations in suites.items():
        if table not in sources:
            continue
        frame = sources[table].frame
        empty = frame.isEmpty() if any(e.meta.get("nonempty_only") for e in expectations) else False
        runnable = []
        for expectation in expectations:
            if not _parameters_of(expectation) <= parameters.keys():
                skipped += 1
            elif expectation.meta.get("nonempty_only") and empty:
                skipped += 1
            else:
                runnable.append(expectation)
        if not runnable:
            continue
        checked = spark_derived_frame(table, frame, config)
        keys = [c for c in KEYS[table] if c in checked.columns]
        result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": max(limit, 1) * 4}
        if keys:
            result_format["unexpected_index_column_names"] = keys
        # GX computes one Spark job per metric bundle: the derived frame is read and computed once
        checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            suite = context.suites.add(gx.ExpectationSuite(name=table, expectations=runnable))
            batch = datasource.add_dataframe_asset(table).add_batch_definition_whole_dataframe(table)
            validation = context.validation_definitions.add(gx.ValidationDefinition(name=table, data=batch, suite=suite))
            result = validation.run(
                batch_parameters={"dataframe": checked},
                expectation_parameters={k: parameters[k] for k in sorted(parameters)},
                result_format=result_format,
            )
        except Exception as exc:  # noqa: BLE001 - any GX failure is a failure of the run
            raise ChecksError(f"{table}: great-expectations raised {type(exc).__name__}: {exc}") from exc
        finally:
            checked.unpersist()
        batches[table] = str((result.meta.get("batch_spec") or {}).get("batch_data"))
        evaluated += len(runnable)
        for position, item in sorted(_by_position(result, suite, table, len(runnable)).items()):
            if item.success:
                continue
            offending, count = _finding(item, keys, limit)
            failed = failed_expectation(table, runnable[position].configuration, offending, count)
            (warnings if failed.severity == "warning" else errors).append(failed)

    return CheckReport(errors=errors, warnings=warnings, evaluated=evaluated,
                       data_docs_index=data_docs_index(context, data_docs_dir), skipped=skipped, gx_batches=batches)
