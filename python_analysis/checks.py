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
64-bit hash candidates) and reported in the same form.

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
"""

from __future__ import annotations

import contextlib
import html
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "PARAMETERS",
    "CheckConfig",
    "CheckReport",
    "ChecksError",
    "FailedExpectation",
    "derived_frame",
    "expectation_suites",
    "run_checks",
]

SEVERITIES = ("error", "warning")
THRESHOLD_MODES = ("absolute", "relative", "zscore")
_EPS = 1e-9

# --------------------------------------------------------------------------------------------------------
# contract: column kinds per table (docs/interface.md; data_quality_issues uses the model's `issue_value`)
# --------------------------------------------------------------------------------------------------------

TEXT, INT, FLOAT, BOOL, TIMESTAMP = "text", "int", "float", "bool", "timestamp"

# GX 1.24 matches pandas dtypes by name and knows no name for pandas 3's default string dtype ("str",
# StringDtype(na_value=nan)); string columns are therefore validated as object columns, where GX checks the
# Python type of every non-null value.
TYPE_LISTS: dict[str, list[str]] = {
    TEXT: ["str"],
    INT: ["int64", "int32", "Int64Dtype", "Int32Dtype"],
    FLOAT: ["float64", "float32", "Float64Dtype"],
    BOOL: ["bool", "BooleanDtype"],
    TIMESTAMP: ["datetime64[us]", "datetime64[ns]", "datetime64[ms]", "datetime64[s]"],
}

QUARTERS = ("q1", "q2", "q3", "q4")

COMPARISON_FEATURES = (
    "transaction_count", "avg_transactions_per_month", "transaction_value_volatility", "customer_age_days",
    "total_revenue", "net_profit", "comprehensive_customer_score", "q1_share", "q2_share", "q3_share",
    "q4_share", "seasonality_std", "seasonality_imbalance", "seasonality_entropy_norm", "seasonality_cv",
    "txn_consistency_ratio", "txn_consistency_error", "quarterly_coverage_gap_ratio", "revenue_per_score",
    "value_mismatch_z",
)

# Key columns per table: used for the uniqueness expectations and to name offending rows.
KEYS: dict[str, tuple[str, ...]] = {
    "int_customers_validated": ("source_row_number",),
    "int_transactions_validated": ("source_row_number",),
    "customer_segment_fit": ("customer_record_id",),
    "classification_anomalies": ("customer_record_id",),
    "segment_retention_summary": ("profitability_segment",),
    "anomaly_feature_comparison": ("feature_name", "anomaly_group"),
    "seasonal_distribution": ("seasonal_distribution_id",),
    "anomaly_crosstabs": ("dimension", "dimension_value"),
    "anomaly_rule_lift": ("rule_name",),
    "data_quality_issues": ("issue_id",),
    "input_row_reconciliation": ("source",),
    "duplicate_customer_keys": ("customer_id", "subsidiary_id"),
}

# The dbt YAML files whose column lists and ``data_type``s are the contract the type checks enforce: the
# marts' enforced contracts and the documented types of the two validated input views.
PROJECT_DIR = Path(__file__).resolve().parent.parent
CONTRACT_FILES = (
    PROJECT_DIR / "models" / "intermediate" / "_intermediate__models.yml",
    PROJECT_DIR / "models" / "marts" / "_marts__models.yml",
)
DBT_TYPE_KINDS: dict[str, str] = {
    "varchar": TEXT, "text": TEXT, "string": TEXT,
    "bigint": INT, "integer": INT, "int": INT, "hugeint": INT,
    "double": FLOAT, "float": FLOAT, "real": FLOAT,
    "boolean": BOOL, "bool": BOOL,
    "timestamp": TIMESTAMP,
}


def contract_columns(files: tuple[Path, ...] = CONTRACT_FILES,
                     tables: tuple[str, ...] = tuple(KEYS)) -> dict[str, dict[str, str]]:
    """``{table: {column: kind}}`` read from the dbt model YAML (``data_type`` of every column), in the
    order of ``tables``. A checked table without typed columns, or a type with no kind, is an error: the
    suites are generated from the contracts, so they cannot drift from them."""
    import yaml

    found: dict[str, dict[str, str]] = {}
    for path in files:
        for model in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models") or []:
            if model.get("name") not in tables:
                continue
            kinds: dict[str, str] = {}
            for column in model.get("columns") or []:
                data_type = column.get("data_type")
                if data_type is None:
                    continue
                kind = DBT_TYPE_KINDS.get(str(data_type).strip().lower())
                if kind is None:
                    raise ValueError(f"{path.name}: {model['name']}.{column['name']}: no check kind for "
                                     f"data_type {data_type!r}")
                kinds[column["name"]] = kind
            found[model["name"]] = kinds
    missing = [t for t in tables if not found.get(t)]
    if missing:
        raise ValueError(f"no typed columns in the dbt YAML for {', '.join(missing)}")
    return {t: found[t] for t in tables}


COLUMNS: dict[str, dict[str, str]] = contract_columns()
TABLES: tuple[str, ...] = tuple(COLUMNS)

# Suite parameters resolved from other tables at run time (cross-table checks).
PARAMETERS: dict[str, str] = {
    "records_in_grain": "input_row_reconciliation.records_in_grain on the 'customers' row",
    "summary_anomaly_total": "sum(segment_retention_summary.anomaly_count)",
    "fit_anomaly_count": "count of customer_segment_fit rows with is_classification_anomaly",
    "fit_row_count": "row count of customer_segment_fit",
}


# --------------------------------------------------------------------------------------------------------
# public types
# --------------------------------------------------------------------------------------------------------


class ChecksError(RuntimeError):
    """The check run itself failed (GX raised, or reported a raised exception): not a data finding."""


@dataclass(frozen=True)
class CheckConfig:
    anomaly_threshold: float = 0.15
    anomaly_threshold_mode: str = "absolute"
    anomaly_rate_band: tuple[float, float] = (0.02, 0.30)
    max_offending_keys: int = 5

    def __post_init__(self) -> None:
        if self.anomaly_threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"anomaly_threshold_mode must be one of {THRESHOLD_MODES}")
        low, high = self.anomaly_rate_band
        if not 0 <= low <= high <= 1:
            raise ValueError("anomaly_rate_band must be (low, high) with 0 <= low <= high <= 1")
        if self.max_offending_keys < 0:
            raise ValueError("max_offending_keys must be >= 0")


@dataclass(frozen=True)
class FailedExpectation:
    table: str
    expectation_type: str
    column: str | None
    severity: str
    offending: list[str] = field(default_factory=list)
    unexpected_count: int | None = None

    def describe(self) -> str:
        target = f"({self.column})" if self.column else ""
        text = f"{self.severity.upper()} {self.table}: {self.expectation_type}{target}"
        if self.unexpected_count is not None:
            text += f" - {self.unexpected_count} unexpected"
        if self.offending:
            text += ": " + "; ".join(self.offending)
        return text


@dataclass
class CheckReport:
    errors: list[FailedExpectation]
    warnings: list[FailedExpectation]
    evaluated: int
    data_docs_index: Path | None = None
    skipped: int = 0
    # tables validated in SQL over every row (not in Data Docs): {table: rows}
    validated_in_sql: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        lines = [
            f"data-quality checks: {self.evaluated} expectations evaluated, {self.skipped} skipped, "
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        ]
        lines += [f"- {failed.describe()}" for failed in self.errors + self.warnings]
        if self.validated_in_sql:
            lines.append("validated in SQL over every row (not in Data Docs): " + ", ".join(
                f"{table} ({rows:,} rows)" for table, rows in self.validated_in_sql.items()))
        if self.data_docs_index is not None:
            lines.append(f"Data Docs: {self.data_docs_index}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# suites
# --------------------------------------------------------------------------------------------------------


def expectation_suites(config: CheckConfig) -> dict[str, list[Any]]:  # noqa: C901 - one declarative list of suites per table; splitting it scatters the contract
    """One list of GX expectations per table (fresh objects on every call).

    ``meta`` of every expectation: ``severity`` ("error" | "warning"), optionally ``nonempty_only`` (skip on an
    empty table) and ``check`` (a short human description). Cross-table expectations use suite parameters
    named in ``PARAMETERS``.
    Long: the declarative suites of every table in one place, read as the contract (#11).
    """
    import great_expectations.expectations as gxe

    def meta(severity: str = "error", **extra: Any) -> dict[str, Any]:
        return {"severity": severity, **extra}

    def types(table: str) -> list[Any]:
        columns = COLUMNS[table]
        out: list[Any] = [gxe.ExpectTableColumnsToMatchSet(
            column_set=list(columns), exact_match=False, meta=meta(check="contract columns present"))]
        out += [gxe.ExpectColumnValuesToBeInTypeList(column=name, type_list=TYPE_LISTS[kind], meta=meta())
                for name, kind in columns.items()]
        return out

    def key(table: str) -> list[Any]:
        columns = KEYS[table]
        out: list[Any] = [gxe.ExpectColumnValuesToNotBeNull(column=columns[0], meta=meta())]
        if len(columns) == 1:
            out.append(gxe.ExpectColumnValuesToBeUnique(column=columns[0], meta=meta()))
        else:
            out.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(columns), meta=meta()))
        return out

    def not_null(*columns: str) -> list[Any]:
        return [gxe.ExpectColumnValuesToNotBeNull(column=c, meta=meta()) for c in columns]

    def between(columns: tuple[str, ...] | list[str], low: float | None, high: float | None,
                severity: str = "error") -> list[Any]:
        return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=low, max_value=high, meta=meta(severity))
                for c in columns]

    def in_set(column: str, values: list[Any], severity: str = "error", **extra: Any) -> Any:
        return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=values, meta=meta(severity, **extra))

    def equal(column_a: str, column_b: str, check: str) -> Any:
        return gxe.ExpectColumnPairValuesToBeEqual(column_A=column_a, column_B=column_b, meta=meta(check=check))

    def at_most(smaller: str, larger: str) -> Any:
        return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=larger, column_B=smaller, or_equal=True, meta=meta(check=f"{smaller} <= {larger}"))

    def row_count_equals(parameter: str) -> Any:
        return gxe.ExpectTableRowCountToEqual(
            value={"$PARAMETER": parameter}, meta=meta(check=f"row count == {PARAMETERS[parameter]}"))

    counts_q = [f"{q}_transactions" for q in QUARTERS]
    shares = [f"{q}_share" for q in QUARTERS]
    low_rate, high_rate = config.anomaly_rate_band
    threshold = float(config.anomaly_threshold)

    def flag_checks(table: str) -> list[Any]:
        return [
            *types(table),
            *key(table),
            *not_null("customer_id", "profitability_segment", "retention_probability",
                      "is_classification_anomaly"),
            gxe.ExpectColumnValuesToBeUnique(column="source_row_number", meta=meta()),
            *between(("retention_probability", "segment_avg_retention"), 0, 1),
            *between(("retention_deviation",), -1, 1),
            in_set("anomaly_threshold_mode", [config.anomaly_threshold_mode], check="built with config mode"),
            *between(("anomaly_threshold",), threshold, threshold),
            equal("is_classification_anomaly", "expected_flag",
                  f"flag == round(deviation, 10) > {threshold} ({config.anomaly_threshold_mode})"),
        ]

    def fit_checks(table: str) -> list[Any]:
        return [
            *flag_checks(table),
            *between(("abs_retention_deviation",), 0, None),
            *between(shares, 0, 1),
            *between(("seasonality_entropy_norm",), 0, 1 + _EPS),
            *between(("seasonality_imbalance",), 0, 1),
            *between(("seasonality_std", "seasonality_cv"), 0, None),
            *between(("transaction_count", *counts_q, "customer_age_days"), 0, None),
            *between(("segment_record_count",), 1, None),
            *between(("q_share_sum",), 1 - _EPS, 1 + _EPS),
            in_set("q_share_nulls", [0, 4], check="q1..q4 shares all present or all missing"),
            in_set("deviation_direction", ["above", "below"]),
            equal("deviation_direction", "expected_direction",
                  "'below' iff retention_deviation (rounded to 10 decimals) < 0"),
            in_set("lifecycle_stage_source", ["given", "derived"]),
            in_set("seasonal_preference_source", ["given", "derived"]),
            in_set("behaviour_source", ["transactions", "precomputed"]),
        ]

    suites: dict[str, list[Any]] = {
        "int_customers_validated": [
            *types("int_customers_validated"),
            *key("int_customers_validated"),
            *between(("source_row_number",), 1, None),
            *not_null("customer_id", "profitability_segment", "retention_probability"),
            *between(("retention_probability",), 0, 1),
            *between(("transaction_count", *counts_q, "customer_age_days"), 0, None),
        ],
        "int_transactions_validated": [
            *types("int_transactions_validated"),
            *key("int_transactions_validated"),
            *between(("source_row_number",), 1, None),
            *not_null("transaction_id", "customer_id", "transaction_date", "amount"),
            gxe.ExpectColumnValuesToBeUnique(column="transaction_id", meta=meta()),
        ],
        "customer_segment_fit": [
            *fit_checks("customer_segment_fit"),
            row_count_equals("records_in_grain"),
            gxe.ExpectColumnMeanToBeBetween(
                column="anomaly_flag_numeric", min_value=low_rate, max_value=high_rate,
                meta=meta("warning", nonempty_only=True, check="overall anomaly rate within anomaly_rate_band")),
        ],
        "classification_anomalies": [
            # a filtered copy of customer_segment_fit: its own key, the flag and the counts
            *flag_checks("classification_anomalies"),
            in_set("is_classification_anomaly", [True]),
            *not_null("anomaly_rank"),
            gxe.ExpectColumnValuesToBeUnique(column="anomaly_rank", meta=meta()),
            *between(("anomaly_rank",), 1, None),
            row_count_equals("summary_anomaly_total"),
            row_count_equals("fit_anomaly_count"),
        ],
        "segment_retention_summary": [
            *types("segment_retention_summary"),
            *key("segment_retention_summary"),
            *between(("record_count", "distinct_customers"), 1, None),
            at_most("distinct_customers", "record_count"),
            *between(("avg_retention", "anomaly_rate", "anomaly_share"), 0, 1),
            *between(("anomaly_count", "above_count", "below_count"), 0, None),
            at_most("anomaly_count", "record_count"),
            equal("anomaly_count", "above_plus_below", "anomaly_count == above_count + below_count"),
            gxe.ExpectColumnSumToBeBetween(
                column="record_count", min_value={"$PARAMETER": "fit_row_count"},
                max_value={"$PARAMETER": "fit_row_count"}, meta=meta(check="sum(record_count) == fit rows")),
        ],
        "anomaly_feature_comparison": [
            *types("anomaly_feature_comparison"),
            *key("anomaly_feature_comparison"),
            *not_null("anomaly_group"),
            in_set("anomaly_group", ["anomaly", "normal"]),
            in_set("feature_name", list(COMPARISON_FEATURES)),
            *between(("n",), 0, None),
            gxe.ExpectTableRowCountToEqual(
                value=2 * len(COMPARISON_FEATURES),
                meta=meta(nonempty_only=True, check="every feature x both groups present")),
        ],
        "seasonal_distribution": [
            *types("seasonal_distribution"),
            *key("seasonal_distribution"),
            *not_null("grouping_level", "anomaly_group"),
            in_set("grouping_level", ["segment", "overall"]),
            in_set("anomaly_group", ["anomaly", "normal", "all"]),
            in_set("segment_matches_level", [True], check="profitability_segment null iff grouping 'overall'"),
            *between(("record_count",), 1, None),
            *between(("records_with_quarters",), 0, None),
            at_most("records_with_quarters", "record_count"),
            *between([f"{q}_share_mean" for q in QUARTERS], 0, 1),
            *between(("q_share_mean_sum",), 1 - _EPS, 1 + _EPS),
        ],
        "anomaly_crosstabs": [
            *types("anomaly_crosstabs"),
            *key("anomaly_crosstabs"),
            *not_null("dimension_value"),
            in_set("dimension", ["seasonal_preference", "lifecycle_stage", "profitability_segment"]),
            *between(("anomaly_count", "normal_count"), 0, None),
            *between(("record_count",), 1, None),
            equal("record_count", "anomaly_plus_normal", "record_count == anomaly_count + normal_count"),
            *between(("anomaly_rate",), 0, 1),
        ],
        "anomaly_rule_lift": [
            *types("anomaly_rule_lift"),
            *key("anomaly_rule_lift"),
            *not_null("feature_name"),
            in_set("operator", [">"]),
            *between(("anomaly_hits", "anomaly_total", "normal_hits", "normal_total"), 0, None),
            at_most("anomaly_hits", "anomaly_total"),
            at_most("normal_hits", "normal_total"),
            *between(("anomaly_hit_rate", "normal_hit_rate"), 0, 1),
            *between(("hit_rate_difference_pp",), -100, 100),
            *between(("lift", "odds_ratio", "mh_odds_ratio"), 0, None),
        ],
        "data_quality_issues": [
            *types("data_quality_issues"),
            *key("data_quality_issues"),
            *not_null("source", "source_row_number", "column_name", "reason", "severity"),
            in_set("source", ["customers", "transactions"]),
            in_set("severity", ["rejected", "warning"]),
            *between(("source_row_number",), 1, None),
        ],
        "input_row_reconciliation": [
            *types("input_row_reconciliation"),
            *key("input_row_reconciliation"),
            in_set("source", ["customers", "transactions"]),
            *between(("input_rows", "clean_rows", "rejected_rows"), 0, None),
            *not_null("is_reconciled"),
            in_set("is_reconciled", [True], check="input rows == clean + rejected"),
            equal("input_rows", "clean_plus_rejected", "input_rows == clean_rows + rejected_rows"),
        ],
        "duplicate_customer_keys": [
            *types("duplicate_customer_keys"),
            *key("duplicate_customer_keys"),
            *between(("record_count",), 2, None),
            *between(("distinct_segments", "distinct_retention_values"), 1, None),
            at_most("distinct_segments", "record_count"),
            at_most("distinct_retention_values", "record_count"),
            in_set("conflict_is_consistent", [True],
                   check="is_conflicting implies distinct_segments > 1 or distinct_retention_values > 1"),
            in_set("is_conflicting", [False], severity="warning",
                   check="duplicated business keys carry conflicting segment/retention"),
        ],
    }
    for table, expectations in suites.items():
        for expectation in expectations:
            if expectation.meta.get("severity") not in SEVERITIES:
                raise ValueError(f"{table}: {expectation.expectation_type} has no valid severity")
    return suites


# --------------------------------------------------------------------------------------------------------
# derived columns (what is validated beyond the raw frame)
# --------------------------------------------------------------------------------------------------------


def _require(frame: pd.DataFrame, table: str, *columns: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ChecksError(f"{table}: column(s) {', '.join(missing)} missing from the frame")


def _bool_or_na(values: pd.Series) -> pd.Series:
    return values.astype("boolean")


def _numeric(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


def expected_anomaly_flag(fit: pd.DataFrame, config: CheckConfig) -> pd.Series:
    """The flag recomputed like the mart: round(|deviation| [/ segment avg], 10) > threshold (strict)."""
    deviation = _numeric(fit["retention_deviation"]).abs()
    if config.anomaly_threshold_mode == "relative":
        average = _numeric(fit["segment_avg_retention"])
        deviation = deviation / average.where(average != 0)
    elif config.anomaly_threshold_mode == "zscore":
        sd = _numeric(fit["segment_sd_retention"])
        deviation = deviation / sd.where(sd != 0)
    flag = deviation.round(10) > float(config.anomaly_threshold)
    return pd.Series(np.where(deviation.isna(), False, flag), index=fit.index, dtype=bool)


def _derive_fit(frame: pd.DataFrame, table: str, config: CheckConfig) -> pd.DataFrame:
    shares = [f"{q}_share" for q in QUARTERS]
    _require(frame, table, *shares, "retention_deviation", "segment_avg_retention", "is_classification_anomaly")
    share_values = frame[shares].apply(_numeric)
    frame["q_share_nulls"] = share_values.isna().sum(axis=1).astype("int64")
    frame["q_share_sum"] = share_values.sum(axis=1, min_count=4)
    deviation = _numeric(frame["retention_deviation"])
    below = deviation.round(10) < 0
    frame["expected_direction"] = pd.Series(np.where(below, "below", "above"), index=frame.index,
                                            dtype=object).where(deviation.notna())
    frame["expected_flag"] = expected_anomaly_flag(frame, config)
    frame["anomaly_flag_numeric"] = _bool_or_na(frame["is_classification_anomaly"]).astype("Float64")
    return frame


def _derive_seasonal(frame: pd.DataFrame, table: str, config: CheckConfig) -> pd.DataFrame:
    means = [f"{q}_share_mean" for q in QUARTERS]
    _require(frame, table, *means, "grouping_level", "profitability_segment")
    frame["q_share_mean_sum"] = frame[means].apply(_numeric).sum(axis=1, min_count=4)
    overall = frame["grouping_level"] == "overall"
    frame["segment_matches_level"] = (overall == frame["profitability_segment"].isna()).astype(bool)
    return frame


def _derive_sum(target: str, *parts: str) -> Callable[[pd.DataFrame, str, CheckConfig], pd.DataFrame]:
    def derive(frame: pd.DataFrame, table: str, config: CheckConfig) -> pd.DataFrame:
        _require(frame, table, *parts)
        frame[target] = sum((frame[p] for p in parts[1:]), frame[parts[0]])
        return frame

    return derive


def _derive_conflicting(frame: pd.DataFrame, table: str, config: CheckConfig) -> pd.DataFrame:
    """A conflict (same snapshot, different values) needs values that differ across the key's records."""
    _require(frame, table, "distinct_segments", "distinct_retention_values", "is_conflicting")
    possible = (_numeric(frame["distinct_segments"]) > 1) | (_numeric(frame["distinct_retention_values"]) > 1)
    flagged = _bool_or_na(frame["is_conflicting"]).fillna(False).astype(bool)
    frame["conflict_is_consistent"] = (~flagged | possible).astype(bool)
    return frame


DERIVATIONS: dict[str, Callable[[pd.DataFrame, str, CheckConfig], pd.DataFrame]] = {
    "customer_segment_fit": _derive_fit,
    "classification_anomalies": _derive_fit,
    "segment_retention_summary": _derive_sum("above_plus_below", "above_count", "below_count"),
    "seasonal_distribution": _derive_seasonal,
    "anomaly_crosstabs": _derive_sum("anomaly_plus_normal", "anomaly_count", "normal_count"),
    "input_row_reconciliation": _derive_sum("clean_plus_rejected", "clean_rows", "rejected_rows"),
    "duplicate_customer_keys": _derive_conflicting,
}


def derived_frame(table: str, frame: pd.DataFrame, config: CheckConfig) -> pd.DataFrame:
    """The frame GX validates for ``table``: a fresh RangeIndex, string columns as object (see
    TYPE_LISTS) and the derived check columns. The int_*_validated views hold only clean rows."""
    frame = frame.copy().reset_index(drop=True)
    for name in list(frame.columns):
        if isinstance(frame[name].dtype, pd.StringDtype):
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    derive = DERIVATIONS.get(table)
    if derive is None:
        return frame
    try:
        return derive(frame, table, config)
    except ChecksError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ChecksError(f"{table}: could not derive the check columns: {exc}") from exc


# --------------------------------------------------------------------------------------------------------
# table sources: a frame already in memory, or a relation read in bounded chunks
# --------------------------------------------------------------------------------------------------------

CHUNK_CELLS_ENV = "SEGFIT_CHECK_CHUNK_CELLS"
DEFAULT_CHUNK_CELLS = 4_000_000


def chunk_cells_from_env() -> int:
    raw = os.environ.get(CHUNK_CELLS_ENV, "").strip()
    if not raw:
        return DEFAULT_CHUNK_CELLS
    try:
        cells = int(raw)
    except ValueError:
        cells = 0
    if cells < 1:
        raise ChecksError(f"{CHUNK_CELLS_ENV} must be a whole number >= 1, got {raw!r}")
    return cells


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class FrameSource:
    """A table that is already a DataFrame (tests, small tables): chunks are row slices of it."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        if len(self.frame) == 0:
            yield self.frame
            return
        for start in range(0, len(self.frame), rows):
            yield self.frame.iloc[start:start + rows]

    def query(self, sql: str, columns: list[str], params: list[Any] | None = None) -> list[tuple]:
        """Run ``sql`` (the table is ``{t}``) over the named columns of the frame, in an in-memory DuckDB."""
        import duckdb

        with contextlib.closing(duckdb.connect()) as con:
            con.register("checked_frame", self.frame[columns])
            return con.execute(sql.format(t="checked_frame"), params or []).fetchall()


class RelationSource:
    """A table or view in an open DuckDB connection, streamed in chunks; table-level figures in SQL."""

    def __init__(self, con: Any, relation: str) -> None:
        self.con = con
        self.relation = relation
        self._columns: list[str] | None = None

    @property
    def columns(self) -> list[str]:
        if self._columns is None:
            described = self.con.execute(f"select * from {self.relation} limit 0").description  # noqa: S608
            self._columns = [d[0] for d in described]
        return self._columns

    def column_types(self) -> dict[str, str]:
        described = self.con.execute(f"describe select * from {self.relation}").fetchall()  # noqa: S608
        return {str(row[0]): str(row[1]) for row in described}

    def row_count(self) -> int:
        (count,), = self.query("select count(*) from {t}", [])
        return int(count)

    def chunks(self, rows: int) -> Iterator[pd.DataFrame]:
        """One pass over the relation in insertion order (DuckDB's default), ``rows`` rows per frame.

        DuckDB hands out 2048-row vectors from a streaming result; they are regrouped into frames of
        exactly ``rows`` rows, so only one chunk (plus one vector) is ever in memory."""
        result = self.con.execute(f"select * from {self.relation}")  # noqa: S608 - fixed names
        pending: list[pd.DataFrame] = []
        held = 0
        first: pd.DataFrame | None = None
        emitted = False
        while True:
            part = result.fetch_df_chunk(1)
            if first is None:
                first = part
            if not len(part):
                break
            pending.append(part)
            held += len(part)
            while held >= rows:
                whole = pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)
                yield whole.iloc[:rows].reset_index(drop=True)
                emitted = True
                rest = whole.iloc[rows:].reset_index(drop=True)
                pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
        if pending:
            yield pending[0] if len(pending) == 1 else pd.concat(pending, ignore_index=True)
        elif not emitted and first is not None:
            yield first  # an empty relation: one empty frame with its columns and types

    def query(self, sql: str, columns: list[str], params: list[Any] | None = None) -> list[tuple]:
        """Run ``sql`` with ``{t}`` standing for the relation (a fixed schema.table name)."""
        return self.con.execute(sql.format(t=self.relation), params or []).fetchall()


Source = FrameSource | RelationSource


def _as_source(table: pd.DataFrame | Source) -> Source:
    return FrameSource(table) if isinstance(table, pd.DataFrame) else table


def resolve_parameters(tables: Mapping[str, pd.DataFrame | Source]) -> dict[str, float]:
    """Values of the cross-table suite parameters that can be computed from ``tables``."""
    sources = {name: _as_source(table) for name, table in tables.items()}
    values: dict[str, float] = {}
    recon = sources.get("input_row_reconciliation")
    if recon is not None and {"source", "records_in_grain"} <= set(recon.columns):
        rows = recon.query("select try_cast(records_in_grain as double) from {t} where source = 'customers'",
                           ["source", "records_in_grain"])
        grain = [r[0] for r in rows if r[0] is not None and not math.isnan(r[0])]
        if len(grain) == 1:
            values["records_in_grain"] = float(grain[0])
    summary = sources.get("segment_retention_summary")
    if summary is not None and "anomaly_count" in summary.columns:
        (total,), = summary.query("select coalesce(sum(try_cast(anomaly_count as double)), 0) from {t}",
                                  ["anomaly_count"])
        values["summary_anomaly_total"] = float(total)
    fit = sources.get("customer_segment_fit")
    if fit is not None:
        if "is_classification_anomaly" in fit.columns:
            (count, flagged), = fit.query(
                "select count(*), count(*) filter (where try_cast(is_classification_anomaly as boolean)) from {t}",
                ["is_classification_anomaly"])
            values["fit_anomaly_count"] = float(flagged)
        else:
            (count,), = fit.query("select count(*) from {t}", fit.columns[:1])
        values["fit_row_count"] = float(count)
    return values


# --------------------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------------------


def _parameters_of(expectation: Any) -> set[str]:
    return {value["$PARAMETER"] for value in expectation.configuration.kwargs.values()
            if isinstance(value, dict) and "$PARAMETER" in value}


def _raised(exception_info: Any) -> str | None:
    """The message of a raised exception hidden in a result's exception_info (flat or keyed by metric)."""
    if not isinstance(exception_info, dict):
        return None
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message") or "exception")
    for value in exception_info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "exception")
    return None


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "<null>"
    if isinstance(value, (np.generic,)):
        value = value.item()
    return str(value)


def _target_columns(kwargs: Mapping[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_A" in kwargs:
        return [kwargs["column_A"], kwargs["column_B"]]
    return list(kwargs.get("column_list") or [])


def _offending(result: Mapping[str, Any], kwargs: Mapping[str, Any], frame: pd.DataFrame, keys: tuple[str, ...],
               limit: int) -> tuple[list[str], int | None]:
    indices = result.get("unexpected_index_list")
    if indices is not None:
        columns = [c for c in _target_columns(kwargs) if c in frame.columns]
        key_columns = [c for c in keys if c in frame.columns]
        out: list[str] = []
        for index in indices:
            if isinstance(index, dict) or index not in frame.index:
                label = _text(index)
            else:
                row = frame.loc[index]
                label = "/".join(f"{k}={_text(row[k])}" for k in key_columns) or f"row {index}"
                values = [f"{c}={_text(row[c])}" for c in columns if c not in key_columns]
                if values:
                    label += ": " + ", ".join(values)
            if label not in out:
                out.append(label)
            if len(out) >= limit:
                break
        count = result.get("unexpected_count")
        return out, int(count) if count is not None else len(indices)
    details = result.get("details") or {}
    missing = (details.get("mismatched") or {}).get("missing") if isinstance(details, dict) else None
    if missing:
        return [f"missing column {c}" for c in missing][:limit], len(missing)
    if "observed_value" in result:
        bounds = {k: kwargs[k] for k in ("value", "min_value", "max_value") if k in kwargs}
        expected = ", ".join(f"{k}={_text(v)}" for k, v in bounds.items())
        observed = f"observed={_text(result['observed_value'])}"
        return [f"{observed} (expected {expected})" if expected else observed][:limit], None
    return [], None


def _escape_deep(value: Any) -> Any:
    if isinstance(value, str):
        return html.escape(value)
    if isinstance(value, dict):
        return {_escape_deep(k): _escape_deep(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape_deep(v) for v in value]
    return value


def _escape_stored_results(context: Any) -> None:
    """HTML-escape every string of the stored validation results before Data Docs are rendered.

    GX 1.24's renderers put unexpected values (partial_unexpected_list, observed values, ...) into the page
    unescaped, so a data value such as ``<script>`` would become markup. The escaped copies only feed the
    HTML; the report is built from the unescaped in-memory results.
    """
    store = context.validation_results_store
    for key in store.list_keys():
        stored = store.get(key)
        for item in stored.results:
            item.result = _escape_deep(item.result or {})
            item.exception_info = _escape_deep(item.exception_info or {})
        store.set(key, stored)


def _make_context(root: Path | None, data_docs_dir: Path | None) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if root is None:
        context = gx.get_context(mode="ephemeral")
    else:
        context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if data_docs_dir is not None:
        for site in list(context.get_site_names()):
            context.delete_data_docs_site(site)
        context.add_data_docs_site(
            site_name="segfit",
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(data_docs_dir)},
            },
        )
    return context


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


# expectations that need the whole table; in chunked mode segfit computes them itself (see _table_level)
TABLE_LEVEL = frozenset({
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
    "expect_table_row_count_to_equal",
    "expect_column_mean_to_be_between",
    "expect_column_sum_to_be_between",
})


@dataclass
class _Finding:
    """One failed expectation, merged over the chunks of a table."""

    offending: list[str] = field(default_factory=list)
    count: int | None = None


def _resolved(kwargs: Mapping[str, Any], parameters: Mapping[str, float]) -> dict[str, Any]:
    return {k: parameters[v["$PARAMETER"]] if isinstance(v, dict) and "$PARAMETER" in v else v
            for k, v in kwargs.items()}


def _validate(validation: Any, suite: Any, table: str, frame: pd.DataFrame, parameters: Mapping[str, float],
              expected: int, run_name: str | None = None) -> dict[int, Any]:
    """Run one GX batch; the results keyed by the expectation's position in the suite."""
    from great_expectations.core.run_identifier import RunIdentifier

    try:
        result = validation.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters={k: parameters[k] for k in sorted(parameters)},
            result_format={"result_format": "COMPLETE"},
            run_id=RunIdentifier(run_name=run_name) if run_name else None,
        )
    except Exception as exc:  # noqa: BLE001 - any GX failure is a failure of the run
        raise ChecksError(f"{table}: great-expectations raised {type(exc).__name__}: {exc}") from exc
    order = {expectation.id: position for position, expectation in enumerate(suite.expectations)}
    by_position: dict[int, Any] = {}
    for item in result.results:
        message = _raised(item.exception_info)
        config_ = item.expectation_config
        if message is not None:
            raise ChecksError(f"{table}: {config_.type}({', '.join(_target_columns(config_.kwargs))}) "
                              f"raised: {message}")
        if config_.id not in order:
            raise ChecksError(f"{table}: result for an unknown expectation {config_.type}")
        by_position[order[config_.id]] = item
    if len(by_position) != expected:
        raise ChecksError(f"{table}: {expected} expectations, {len(by_position)} results")
    return by_position


def _duplicates(source: Source, table: str, columns: list[str], limit: int) -> tuple[int, list[str]]:
    """Rows whose value of ``columns`` occurs more than once (rows with all of them null are ignored, as
    GX does): how many, and the first ``limit`` distinct labels (key columns, then the values), in key
    order. Runs in SQL over the whole table, so it needs no more than one chunk in Python."""
    keys = [c for c in KEYS[table] if c in source.columns]
    shown = keys + [c for c in columns if c not in keys]
    quoted = [_quote(c) for c in columns]
    not_all_null = " or ".join(f"{c} is not null" for c in quoted)
    # identifiers: fixed suite column names, quoted; {t} is a fixed schema.table name
    # 64-bit hashes are grouped first (far cheaper than grouping millions of strings); only the rows whose
    # hash repeats (true repeats and the rare collisions) are then grouped by their values, exactly
    hashed = f"hash({', '.join(quoted)})"
    candidates = (f"{hashed} in (select {hashed} from {{t}} where {not_all_null} "  # noqa: S608
                  f"group by {hashed} having count(*) > 1)")
    repeated = (f"select {', '.join(quoted)} from {{t}} where {not_all_null} and {candidates} "  # noqa: S608
                f"group by {', '.join(quoted)} having count(*) > 1")
    join = " and ".join(f"src.{c} is not distinct from rep.{c}" for c in quoted)
    order = ", ".join(f"src.{_quote(c)}" for c in shown)
    try:
        (count,), = source.query(f"select coalesce(sum(n), 0) from (select count(*) as n from {{t}} "  # noqa: S608
                                 f"where {not_all_null} and {candidates} group by {', '.join(quoted)} "
                                 f"having count(*) > 1)",
                                 list(dict.fromkeys(shown)))
        rows = source.query(f"select {order} from {{t}} as src join ({repeated}) as rep on {join} "  # noqa: S608
                            f"order by {order} limit ?", list(dict.fromkeys(shown)), [max(limit, 1) * 4]) if count else []
    except Exception as exc:  # noqa: BLE001 - a missing column or a SQL error is a failure of the run
        raise ChecksError(f"{table}: uniqueness of {', '.join(columns)} could not be computed: {exc}") from exc
    labels: list[str] = []
    for row in rows:
        values = dict(zip(shown, row, strict=True))
        label = "/".join(f"{k}={_text(values[k])}" for k in keys) or "row"
        extra = [f"{c}={_text(values[c])}" for c in columns if c not in keys]
        if extra:
            label += ": " + ", ".join(extra)
        if label not in labels:
            labels.append(label)
        if len(labels) >= limit:
            break
    return int(count), labels


@dataclass
class _Totals:
    """Table-level figures accumulated over the chunks (on the derived columns)."""

    rows: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, frame: pd.DataFrame, columns: set[str]) -> None:
        self.rows += len(frame)
        for column in columns:
            if column not in frame.columns:
                continue
            values = _numeric(frame[column]).dropna()
            self.sums[column] = self.sums.get(column, 0.0) + float(values.sum())
            self.counts[column] = self.counts.get(column, 0) + int(len(values))


def _table_level(expectation: Any, source: Source, table: str, totals: _Totals,
                 parameters: Mapping[str, float], config: CheckConfig) -> _Finding | None:
    """Evaluate one table-level expectation over the whole table; ``None`` when it passes."""
    kind = expectation.expectation_type
    kwargs = _resolved(expectation.configuration.kwargs, parameters)
    if kind in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        count, labels = _duplicates(source, table, _target_columns(kwargs), config.max_offending_keys)
        return _Finding(labels, count) if count else None
    if kind == "expect_table_row_count_to_equal":
        if isinstance(kwargs["value"], float) and kwargs["value"].is_integer():
            kwargs["value"] = int(kwargs["value"])  # as GX's integer-typed field shows it
        observed: Any = totals.rows
        passed = observed == kwargs["value"]
    else:
        column = kwargs["column"]
        if column not in source.columns and column not in totals.counts:
            raise ChecksError(f"{table}: column {column} missing for {kind}")
        total, count = totals.sums.get(column, 0.0), totals.counts.get(column, 0)
        observed = (total / count if count else None) if kind == "expect_column_mean_to_be_between" else total
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        passed = observed is not None and (low is None or observed >= low) and (high is None or observed <= high)
    if passed:
        return None
    offending, count_ = _offending({"observed_value": observed}, kwargs, pd.DataFrame(), KEYS[table],
                                  config.max_offending_keys)
    return _Finding(offending, count_)


# row-level expectations segfit can evaluate in SQL over a whole table (see _sql_row_level)
SQL_ROW_LEVEL = frozenset({
    "expect_table_columns_to_match_set",
    "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_pair_values_to_be_equal",
    "expect_column_pair_values_a_to_be_greater_than_b",
})

# DuckDB column types -> the column kinds of TYPE_LISTS (what the pandas frame of such a column holds)
_DUCKDB_KINDS: dict[str, str] = {
    "VARCHAR": TEXT,
    "BIGINT": INT, "INTEGER": INT, "SMALLINT": INT, "TINYINT": INT, "HUGEINT": INT, "UBIGINT": INT,
    "UINTEGER": INT, "USMALLINT": INT, "UTINYINT": INT,
    "DOUBLE": FLOAT, "FLOAT": FLOAT,
    "BOOLEAN": BOOL,
    "TIMESTAMP": TIMESTAMP, "TIMESTAMP_NS": TIMESTAMP, "TIMESTAMP_MS": TIMESTAMP, "TIMESTAMP_S": TIMESTAMP,
}


def _number(column: str) -> str:
    """SQL: a column as a double, NaN as null (pandas' to_numeric(...).isna() view of it)."""
    value = f"try_cast({_quote(column)} as double)"
    return f"(case when isnan({value}) then null else {value} end)"


# the flag's rule per threshold mode, as in expected_anomaly_flag: |deviation| divided by this column (None:
# not divided). A mode missing here keeps the fit tables on the GX path.
SQL_FLAG_DIVISORS: dict[str, str | None] = {
    "absolute": None, "relative": "segment_avg_retention", "zscore": "segment_sd_retention",
}


def _sql_derived_fit(config: CheckConfig) -> str:
    """The derived check columns of _derive_fit as a SQL select list (same definitions: numpy's
    round-half-to-even at 10 decimals, missing = null or NaN)."""
    shares = [_number(f"{q}_share") for q in QUARTERS]
    deviation = _number("retention_deviation")
    magnitude = f"abs({deviation})"
    divisor_column = SQL_FLAG_DIVISORS[config.anomaly_threshold_mode]
    if divisor_column is not None:
        divisor = _number(divisor_column)
        magnitude = f"({magnitude} / (case when {divisor} <> 0 then {divisor} end))"
    threshold = repr(float(config.anomaly_threshold))  # a validated float, not text from the data
    flag = _quote("is_classification_anomaly")
    return ", ".join([
        "(" + " + ".join(f"(case when {v} is null then 1 else 0 end)" for v in shares) + ") as q_share_nulls",
        "(" + " + ".join(shares) + ") as q_share_sum",
        f"(case when {deviation} is null then null when round_even({deviation}, 10) < 0 then 'below' "
        f"else 'above' end) as expected_direction",
        f"coalesce(round_even({magnitude}, 10) > {threshold}, false) as expected_flag",
        f"cast(try_cast({flag} as boolean) as double) as anomaly_flag_numeric",
    ])


# derived check columns with a SQL form (the other DERIVATIONS are on small summary tables)
SQL_DERIVATIONS: dict[str, Callable[[CheckConfig], str]] = {
    "customer_segment_fit": _sql_derived_fit,
    "classification_anomalies": _sql_derived_fit,
}


def _sql_checkable(table: str, expectations: list[Any], config: CheckConfig) -> bool:
    """A table can be validated in SQL (instead of GX batches of chunks) when its derived check columns,
    if any, have a SQL form and every expectation of its suite has a SQL form here."""
    if table in SQL_DERIVATIONS and config.anomaly_threshold_mode not in SQL_FLAG_DIVISORS:
        return False
    return ((table not in DERIVATIONS or table in SQL_DERIVATIONS)
            and all(e.expectation_type in SQL_ROW_LEVEL | TABLE_LEVEL for e in expectations))


def _with_derived(source: RelationSource, table: str, config: CheckConfig) -> RelationSource:
    derive = SQL_DERIVATIONS.get(table)
    if derive is None:
        return source
    return RelationSource(source.con, f"(select *, {derive(config)} from {source.relation})")  # noqa: S608


def _missing(column: str, kinds: Mapping[str, str]) -> str:
    """SQL: the value is missing as pandas/GX sees it (null, or NaN in a float column)."""
    quoted = _quote(column)
    if kinds.get(column) == FLOAT:
        return f"({quoted} is null or isnan({quoted}))"
    return f"({quoted} is null)"


def _violation(expectation: Any, kwargs: Mapping[str, Any], kinds: Mapping[str, str],
               params: list[Any]) -> str | None:
    """SQL condition true for a row GX would count as unexpected; ``None`` for a column-level expectation.
    Literal values are appended to ``params`` (never pasted into the SQL)."""
    kind = expectation.expectation_type
    if kind == "expect_column_values_to_not_be_null":
        return _missing(kwargs["column"], kinds)
    if kind == "expect_column_values_to_be_between":
        column = _quote(kwargs["column"])
        outside = []
        for bound, operator in (("min_value", "<"), ("max_value", ">")):
            if kwargs.get(bound) is not None:
                if kwargs.get("strict_min" if bound == "min_value" else "strict_max"):
                    operator += "="
                outside.append(f"{column} {operator} ?")
                params.append(kwargs[bound])
        if not outside:
            return "false"
        return f"(not {_missing(kwargs['column'], kinds)} and ({' or '.join(outside)}))"
    if kind == "expect_column_values_to_be_in_set":
        params.append(list(kwargs["value_set"]))
        return f"(not {_missing(kwargs['column'], kinds)} and not list_contains(?, {_quote(kwargs['column'])}))"
    if kind in ("expect_column_pair_values_to_be_equal", "expect_column_pair_values_a_to_be_greater_than_b"):
        a, b = kwargs["column_A"], kwargs["column_B"]
        both_missing = f"({_missing(a, kinds)} and {_missing(b, kinds)})"
        if kind == "expect_column_pair_values_to_be_equal":
            differs = f"({_missing(a, kinds)} or {_missing(b, kinds)} or {_quote(a)} <> {_quote(b)})"
        else:
            operator = ">=" if kwargs.get("or_equal") else ">"
            differs = f"not coalesce({_quote(a)} {operator} {_quote(b)}, false)"
        return f"(not {both_missing} and {differs})"
    return None


def _label(values: Mapping[str, Any], keys: list[str], columns: list[str]) -> str:
    """An offending row as GX results are shown (see _offending): key=value, then the checked values."""
    label = "/".join(f"{k}={_text(values[k])}" for k in keys) or "row"
    extra = [f"{c}={_text(values[c])}" for c in columns if c not in keys]
    if extra:
        label += ": " + ", ".join(extra)
    return label


def _sql_row_level(expectations: list[tuple[int, Any]], source: Source, table: str,  # noqa: C901 - one SQL translation per GX expectation type, side by side (owned by #11)
                   parameters: Mapping[str, float], config: CheckConfig,
                   column_types: Mapping[str, str]) -> tuple[dict[int, _Finding], _Totals]:
    """Evaluate row-level expectations over every row of the table in SQL: one scan counts the unexpected
    rows of all of them; a failing one is then queried for its first offending rows in key order. Same
    semantics as GX on a pandas frame: missing = null or NaN; between/in-set ignore missing values; pair
    checks ignore rows where both values are missing."""
    kinds = {name: _DUCKDB_KINDS.get(kind.upper().split("(")[0], kind) for name, kind in column_types.items()}
    findings: dict[int, _Finding] = {}
    conditions: list[tuple[int, Any, dict[str, Any], str, list[Any]]] = []
    for position, expectation in expectations:
        kwargs = _resolved(expectation.configuration.kwargs, parameters)
        kind = expectation.expectation_type
        if kind == "expect_table_columns_to_match_set":
            missing = [c for c in kwargs["column_set"] if c not in column_types]
            if missing:
                findings[position] = _Finding([f"missing column {c}" for c in missing][:config.max_offending_keys],
                                              len(missing))
            continue
        targets = _target_columns(kwargs)
        absent = [c for c in targets if c not in column_types]
        if absent:
            raise ChecksError(f"{table}: {kind}({', '.join(targets)}) raised: column {absent[0]} is missing")
        if kind == "expect_column_values_to_be_in_type_list":
            wanted = {k for k, names in TYPE_LISTS.items() if set(names) & set(kwargs["type_list"])}
            if kinds[kwargs["column"]] not in wanted:
                findings[position] = _Finding([f"observed={column_types[kwargs['column']]}"][:config.max_offending_keys],
                                              None)
            continue
        params: list[Any] = []
        condition = _violation(expectation, kwargs, kinds, params)
        if condition is None:
            raise ChecksError(f"{table}: {kind} has no SQL form")
        conditions.append((position, expectation, kwargs, condition, params))
    all_params = [p for *_, params in conditions for p in params]
    counted = ", ".join(f"count(*) filter (where {condition})" for *_, condition, _ in conditions)
    try:
        (row,) = source.query(f"select count(*){', ' + counted if counted else ''} from {{t}}",  # noqa: S608
                              list(column_types), all_params)
    except Exception as exc:  # noqa: BLE001 - a SQL error is a failure of the run
        raise ChecksError(f"{table}: the row-level checks could not be computed: {exc}") from exc
    totals = _Totals(rows=int(row[0]))
    keys = [c for c in KEYS[table] if c in column_types]
    for (position, _, kwargs, condition, params), count in zip(conditions, row[1:], strict=True):
        if not count:
            continue
        shown = list(dict.fromkeys(keys + _target_columns(kwargs)))
        order = ", ".join(_quote(k) for k in keys) or "1"
        rows = source.query(f"select {', '.join(_quote(c) for c in shown)} from {{t}} "  # noqa: S608
                            f"where {condition} order by {order} limit ?", list(column_types),
                            [*params, max(config.max_offending_keys, 1) * 4])
        labels: list[str] = []
        for values in rows:
            label = _label(dict(zip(shown, values, strict=True)), keys, _target_columns(kwargs))
            if label not in labels and len(labels) < config.max_offending_keys:
                labels.append(label)
        findings[position] = _Finding(labels, int(count))
    return findings, totals


def _sql_totals(source: Source, table: str, columns: set[str], totals: _Totals) -> None:
    """Sums and counts of numeric columns over the whole table, for the mean and sum expectations."""
    for column in sorted(columns):
        if column not in source.columns:
            continue
        value = f"try_cast({_quote(column)} as double)"  # a quoted suite column name
        sql = f"select coalesce(sum(v), 0), count(v) from (select {value} as v from {{t}}) where not isnan(v)"  # noqa: S608
        (total, count), = source.query(sql, [column])
        totals.sums[column] = float(total)
        totals.counts[column] = int(count)


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
            config_ = runnable[position].configuration
            severity = (config_.meta or {}).get("severity", "error")
            failed = FailedExpectation(
                table=table,
                expectation_type=config_.type,
                column=",".join(_target_columns(config_.kwargs)) or None,
                severity=severity,
                offending=findings[position].offending,
                unexpected_count=findings[position].count,
            )
            (warnings if severity == "warning" else errors).append(failed)

    index: Path | None = None
    if data_docs_dir is not None:
        try:
            _escape_stored_results(context)
            context.build_data_docs(site_names=["segfit"])
        except Exception as exc:  # noqa: BLE001
            raise ChecksError(f"building Data Docs failed: {exc}") from exc
        index = data_docs_dir / "index.html"
        if not index.is_file():
            raise ChecksError(f"Data Docs were built but {index} is missing")
    return CheckReport(errors=errors, warnings=warnings, evaluated=evaluated, data_docs_index=index,
                       skipped=skipped, validated_in_sql=validated_in_sql)


def _chain(first: pd.DataFrame, second: pd.DataFrame, rest: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    yield first
    yield second
    yield from rest
