"""The checks' contract: column kinds per table, read from the dbt YAML, and the key columns and suite parameters."""

from __future__ import annotations

from pathlib import Path

SEVERITIES = ("error", "warning")
THRESHOLD_MODES = ("absolute", "relative", "zscore")
_EPS = 1e-9


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

# The same kinds as GX's Spark datasource sees them: the pyspark.sql.types class names of the column types
# (GX checks isinstance of the column's Spark type).
SPARK_TYPE_LISTS: dict[str, list[str]] = {
    TEXT: ["StringType"],
    INT: ["LongType", "IntegerType"],
    FLOAT: ["DoubleType", "FloatType"],
    BOOL: ["BooleanType"],
    TIMESTAMP: ["TimestampType", "TimestampNTZType"],
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
PROJECT_DIR = Path(__file__).resolve().parents[2]
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
        for model in (yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}).get("models") or []:
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
