"""The expectation suites: one list of great-expectations expectations per table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .contract import _EPS, COLUMNS, COMPARISON_FEATURES, KEYS, PARAMETERS, QUARTERS, SEVERITIES, TYPE_LISTS
from .results import CheckConfig


def expectation_suites(config: CheckConfig,  # noqa: C901 - one declarative list of suites per table; splitting it scatters the contract
                       type_lists: Mapping[str, list[str]] = TYPE_LISTS) -> dict[str, list[Any]]:
    """One list of GX expectations per table (fresh objects on every call).

    ``meta`` of every expectation: ``severity`` ("error" | "warning"), optionally ``nonempty_only`` (skip on an
    empty table) and ``check`` (a short human description). Cross-table expectations use suite parameters
    named in ``PARAMETERS``. ``type_lists`` names each column kind's types as the datasource sees them:
    pandas dtypes (``TYPE_LISTS``, the default) or Spark SQL types (``SPARK_TYPE_LISTS``, GX's Spark
    datasource); everything else is the same suite on either.
    Long: the declarative suites of every table in one place, read as the contract (#11).
    """
    import great_expectations.expectations as gxe

    def meta(severity: str = "error", **extra: Any) -> dict[str, Any]:
        return {"severity": severity, **extra}

    def types(table: str) -> list[Any]:
        columns = COLUMNS[table]
        out: list[Any] = [gxe.ExpectTableColumnsToMatchSet(
            column_set=list(columns), exact_match=False, meta=meta(check="contract columns present"))]
        out += [gxe.ExpectColumnValuesToBeInTypeList(column=name, type_list=list(type_lists[kind]), meta=meta())
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
