"""The derived check columns GX's Spark datasource validates (Spark SQL, ``quality.SPARK_DERIVATIONS``) are the
pandas ones (``quality.derived_frame``) on rows chosen at the edges: the 10-decimal rounding of the flag and the
direction, missing and NaN values, a zero divisor, all three threshold modes. Needs a Spark session only (no
build); runs under `make test-spark`."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from python_analysis import quality, spark_engine

NAN = float("nan")

FIT_COLUMNS = ["customer_record_id", "q1_share", "q2_share", "q3_share", "q4_share", "retention_deviation",
               "segment_avg_retention", "segment_sd_retention", "is_classification_anomaly"]
FIT_ROWS = [
    ("a", 0.25, 0.25, 0.25, 0.25, 0.15, 0.5, 0.1, False),                # exactly the threshold: not above
    ("b", 0.1, 0.2, 0.3, 0.4, 0.15000000004, 0.5, 0.1, False),           # rounds to 0.15 at 10 places
    ("c", 0.1, 0.2, 0.3, 0.4, 0.15000000006, 0.5, 0.1, True),            # rounds to 0.1500000001
    ("d", None, 0.2, 0.3, 0.4, -0.2, 0.0, 0.0, True),                    # a missing share, zero divisors
    ("e", NAN, NAN, NAN, NAN, -4e-11, 0.5, 0.1, False),                  # NaN shares; rounds to -0.0: 'above'
    ("f", 0.5, 0.5, 0.0, 0.0, -6e-11, 0.5, 0.1, None),                   # rounds to -1e-10: 'below'
    ("g", 0.5, 0.5, 0.0, 0.0, None, 0.5, 0.1, None),                     # no deviation
    ("h", 0.5, 0.5, 0.0, 0.0, NAN, 0.5, 0.1, False),                     # NaN deviation
    ("i", 0.3, 0.3, 0.2, 0.2, -0.31, 2.0, 3.0, True),
]
FIT_SCHEMA = ("customer_record_id string, q1_share double, q2_share double, q3_share double, q4_share double, "
              "retention_deviation double, segment_avg_retention double, segment_sd_retention double, "
              "is_classification_anomaly boolean")


def _same(left, right) -> bool:
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA for v in (left, right)]
    if any(missing):
        return all(missing)
    if isinstance(left, float) or isinstance(right, float):
        return math.isclose(float(left), float(right), rel_tol=1e-15, abs_tol=0)
    return left == right


def _compare(table: str, rows: list[tuple], schema: str, columns: list[str], config: quality.CheckConfig) -> None:
    spark = spark_engine.spark_session()
    frame = spark.createDataFrame(rows, schema)
    derived = quality.spark_derived_frame(table, frame, config)
    got = [row.asDict() for row in derived.collect()]
    expected = quality.derived_frame(table, pd.DataFrame(rows, columns=columns), config)
    new = [c for c in expected.columns if c not in columns]
    assert new and set(new) <= set(derived.columns), (new, derived.columns)
    for i, row in enumerate(got):
        for column in new:
            want = expected[column].iloc[i]
            want = None if want is pd.NA else (want.item() if hasattr(want, "item") else want)
            assert _same(row[column], want), (table, config.anomaly_threshold_mode, rows[i][0], column,
                                              row[column], want)


@pytest.mark.parametrize("mode", quality.THRESHOLD_MODES)
def test_the_spark_fit_check_columns_equal_the_pandas_ones(mode):
    config = quality.CheckConfig(anomaly_threshold=0.15 if mode == "absolute" else 0.3, anomaly_threshold_mode=mode)
    _compare("customer_segment_fit", FIT_ROWS, FIT_SCHEMA, FIT_COLUMNS, config)


def test_the_spark_summary_check_columns_equal_the_pandas_ones():
    config = quality.CheckConfig()
    _compare("seasonal_distribution",
             [(1, "segment", "Gold", 0.25, 0.25, 0.25, 0.25), (2, "overall", None, 0.5, 0.5, None, 0.0),
              (3, "overall", "Gold", 0.1, 0.2, 0.3, 0.4), (4, None, None, NAN, 0.1, 0.1, 0.1)],
             "seasonal_distribution_id long, grouping_level string, profitability_segment string, "
             "q1_share_mean double, q2_share_mean double, q3_share_mean double, q4_share_mean double",
             ["seasonal_distribution_id", "grouping_level", "profitability_segment", "q1_share_mean",
              "q2_share_mean", "q3_share_mean", "q4_share_mean"], config)
    _compare("duplicate_customer_keys",
             [("c1", "s", 2, 1, 1, True), ("c2", "s", 2, 2, 1, True), ("c3", "s", 3, 1, 1, False),
              ("c4", "s", 2, 1, None, None), ("c5", "s", 2, None, 3, True)],
             "customer_id string, subsidiary_id string, record_count long, distinct_segments long, "
             "distinct_retention_values long, is_conflicting boolean",
             ["customer_id", "subsidiary_id", "record_count", "distinct_segments", "distinct_retention_values",
              "is_conflicting"], config)
    _compare("input_row_reconciliation", [("customers", 10, 7, 3), ("transactions", 5, None, 5)],
             "source string, input_rows long, clean_rows long, rejected_rows long",
             ["source", "input_rows", "clean_rows", "rejected_rows"], config)


def test_nan_in_a_spark_float_column_is_missing_as_in_pandas():
    """GX's pandas datasource counts NaN as missing; the Spark frame GX validates holds null there."""
    spark = spark_engine.spark_session()
    frame = spark.createDataFrame([("a", NAN), ("b", 0.5), ("c", None)], "rule_name string, lift double")
    values = [row["lift"] for row in quality.spark_derived_frame("anomaly_rule_lift", frame,
                                                                 quality.CheckConfig()).collect()]
    assert values == [None, 0.5, None]
