"""The bad-input catalogue: every case ends in a clear non-zero exit or a quarantine row, never a silent drop.

Quarantine cases share one build (one customers file and one transactions file holding one bad row per
case, each under its own key); fatal cases stop before dbt. In every build, input rows = clean + rejected.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from python_analysis import cli, pipeline, warehouse

CUSTOMER_HEADER = (
    "customer_id,customer_name,subsidiary_id,segmentation_date,profitability_segment,retention_probability,"
    "comprehensive_customer_score"
)
# Good background records so every segment has an average and the file is a realistic mix.
GOOD_CUSTOMERS = [
    "g1,Good One,S1,2025-06-30,Gold,0.60,50",
    "g2,Good Two,S1,2025-06-30,Gold,0.62,55",
    "g3,Good Three,S1,2025-06-30,Gold,0.58,45",
    "g4,Good Four,S1,2025-06-30,Tin,0.30,20",
    "g5,Good Five,S1,2025-06-30,Tin,0.32,22",
]


@dataclass(frozen=True)
class Case:
    name: str
    source: str  # customers | transactions
    row: str
    column: str | None  # the column named in data_quality_issues; None = row must be kept (clean)
    reason: str | None  # substring of the reason


CUSTOMER_CASES = [
    Case("null_key", "customers", ",Nameless,S1,2025-06-30,Gold,0.6,50", "customer_id", "null or blank"),
    Case("blank_key", "customers", "   ,Blank Key,S1,2025-06-30,Gold,0.6,50", "customer_id", "null or blank"),
    Case("retention_below_0", "customers", "rneg,R,S1,2025-06-30,Gold,-0.1,50", "retention_probability",
         "outside [0, 1]"),
    Case("retention_above_1", "customers", "rbig,R,S1,2025-06-30,Gold,1.2,50", "retention_probability",
         "outside [0, 1]"),
    Case("retention_null", "customers", "rnull,R,S1,2025-06-30,Gold,,50", "retention_probability",
         "null or blank"),
    Case("retention_percentage", "customers", "rpct,R,S1,2025-06-30,Gold,45,50", "retention_probability",
         "looks like a percentage"),
    Case("retention_text", "customers", "rtxt,R,S1,2025-06-30,Gold,high,50", "retention_probability",
         "not a number"),
    Case("text_in_numeric", "customers", "stxt,R,S1,2025-06-30,Gold,0.6,abc", "comprehensive_customer_score",
         "not a number"),
    Case("unparseable_date", "customers", "dbad,R,S1,31/02/2025,Gold,0.6,50", "segmentation_date",
         "not a valid date"),
    Case("blank_segment", "customers", "sblank,R,S1,2025-06-30,,0.6,50", "profitability_segment",
         "null or blank"),
    Case("unknown_segment", "customers", "sunk,R,S1,2025-06-30,Platinum,0.6,50", "profitability_segment",
         "not one of the allowed segments"),
    Case("zero_score_kept", "customers", "zscore,Zero Score,S1,2025-06-30,Gold,0.6,0", None, None),
    Case("one_record_segment_kept", "customers", "solo,Solo,S1,2025-06-30,Lonely,0.99,70", None, None),
    Case("html_name_kept", "customers", 'html,"<script>alert(1)</script> & <b>Co</b>",S1,2025-06-30,Gold,0.6,50',
         None, None),
    Case("zero_quarters_kept", "customers", "nozero,No Transactions,S1,2025-06-30,Gold,0.6,50", None, None),
    # the closed interval's edges are valid retention probabilities
    Case("retention_exactly_0_kept", "customers", "redge0,Edge Zero,S1,2025-06-30,Tin,0,21", None, None),
    Case("retention_exactly_1_kept", "customers", "redge1,Edge One,S1,2025-06-30,Gold,1.0,61", None, None),
]
TRANSACTION_HEADER = "transaction_id,customer_id,transaction_date,amount,profit"
GOOD_TRANSACTIONS = [
    "t1,g1,2025-01-10,100.00,10.00",
    "t2,g1,2025-04-10,50.00,5.00",
    "t3,g2,2025-02-10,80.00,8.00",
    "t4,zscore,2025-03-01,40.00,4.00",
    "t5,solo,2025-03-01,40.00,4.00",
    "t6,html,2025-03-01,40.00,4.00",
]
TRANSACTION_CASES = [
    Case("duplicate_transaction_id", "transactions", "t1,g1,2025-01-11,999.00,1.00", "transaction_id",
         "duplicate transaction_id"),
    Case("orphan_transaction", "transactions", "t_orphan,nobody,2025-01-10,10.00,1.00", "customer_id",
         "no valid customer record"),
    Case("orphan_of_rejected_customer", "transactions", "t_rej,rneg,2025-01-10,10.00,1.00", "customer_id",
         "no valid customer record"),
    Case("null_transaction_id", "transactions", ",g1,2025-01-10,10.00,1.00", "transaction_id", "null or blank"),
    Case("unparseable_transaction_date", "transactions", "t_date,g1,not-a-date,10.00,1.00", "transaction_date",
         "not a valid date"),
    Case("far_future_date", "transactions", "t_future,g1,2999-01-01,10.00,1.00", "transaction_date",
         "in the future"),
    Case("text_amount", "transactions", "t_amt,g1,2025-01-10,ten,1.00", "amount", "not a number"),
    Case("blank_amount", "transactions", "t_blank,g1,2025-01-10,,1.00", "amount", "null or blank"),
    Case("refund_kept", "transactions", "t_refund,g2,2025-02-11,-30.00,-3.00", None, None),
    Case("after_segmentation_date_kept", "transactions", "t_late,g2,2025-08-01,500.00,50.00", None, None),
]


@pytest.fixture(scope="module")
def quarantine_build(build_warehouse, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_inputs")
    customers = folder / "customers.csv"
    transactions = folder / "transactions.csv"
    # a UTF-8 BOM on one file and CRLF line ends on the other: both must read cleanly
    customer_lines = [CUSTOMER_HEADER, *GOOD_CUSTOMERS, *(c.row for c in CUSTOMER_CASES)]
    customers.write_bytes(b"\xef\xbb\xbf" + ("\n".join(customer_lines) + "\n").encode())
    transaction_lines = [TRANSACTION_HEADER, *GOOD_TRANSACTIONS, *(c.row for c in TRANSACTION_CASES)]
    transactions.write_bytes(("\r\n".join(transaction_lines) + "\r\n").encode())
    options = pipeline.BuildOptions(
        customers=customers, transactions=transactions,
        extra_vars=(("allowed_segments", "Gold,Tin,Lonely"),),
    )
    path = build_warehouse(options)
    tables = warehouse.read_tables(path, {
        "issues": "marts.data_quality_issues",
        "reconciliation": "marts.input_row_reconciliation",
        "fit": "marts.customer_segment_fit",
        "transactions": "intermediate.int_transactions_validated",
    })
    return {"customer_lines": customer_lines, "transaction_lines": transaction_lines, **tables}


def _row_number(case: Case, lines: list[str]) -> int:
    return lines.index(case.row)  # data row number = line index (line 0 is the header)


@pytest.mark.parametrize("case", CUSTOMER_CASES + TRANSACTION_CASES, ids=lambda c: c.name)
def test_each_bad_row_is_quarantined_with_a_reason_or_kept(case, quarantine_build):
    lines = quarantine_build["customer_lines" if case.source == "customers" else "transaction_lines"]
    row_number = _row_number(case, lines)
    issues = quarantine_build["issues"]
    mine = issues[(issues["source"] == case.source) & (issues["source_row_number"] == row_number)
                  & (issues["severity"] == "rejected")]
    if case.column is None:
        assert mine.empty, mine.to_dict("records")
    else:
        assert len(mine) >= 1, f"row {row_number} of {case.source} was not quarantined"
        assert case.column in set(mine["column_name"]), mine.to_dict("records")
        assert mine["reason"].str.contains(case.reason, regex=False).any(), mine["reason"].tolist()


def test_every_input_row_is_accounted_for(quarantine_build):
    reconciliation = quarantine_build["reconciliation"].set_index("source")
    assert reconciliation.loc["customers", "input_rows"] == len(quarantine_build["customer_lines"]) - 1
    assert reconciliation.loc["transactions", "input_rows"] == len(quarantine_build["transaction_lines"]) - 1
    for source in ("customers", "transactions"):
        row = reconciliation.loc[source]
        assert row["input_rows"] == row["clean_rows"] + row["rejected_rows"]
    expected_rejected = sum(1 for c in CUSTOMER_CASES if c.column)
    assert reconciliation.loc["customers", "rejected_rows"] == expected_rejected


def test_refunds_net_off_and_later_transactions_are_cut_off(quarantine_build):
    fit = quarantine_build["fit"].set_index("customer_id")
    # g2: 80.00 on 2025-02-10 and a refund of -30.00; the 500.00 dated after segmentation is not counted
    assert fit.loc["g2", "transaction_count"] == 2
    assert fit.loc["g2", "total_revenue"] == pytest.approx(50.0)
    clean = quarantine_build["transactions"]
    assert (clean["transaction_id"] == "t_late").sum() == 1  # kept as a clean transaction


def test_edge_records_build_without_errors(quarantine_build):
    fit = quarantine_build["fit"].set_index("customer_id")
    assert pd.isna(fit.loc["zscore", "revenue_per_score"])
    assert fit.loc["solo", "retention_deviation"] == 0 and not fit.loc["solo", "is_classification_anomaly"]
    assert fit.loc["nozero", "transaction_count"] == 0
    assert pd.isna(fit.loc["nozero", "q1_share"]) and pd.isna(fit.loc["nozero", "seasonality_entropy_norm"])
    assert fit.loc["html", "customer_name"] == "<script>alert(1)</script> & <b>Co</b>"


def test_retention_of_exactly_0_and_1_counts_in_the_segment_average(quarantine_build):
    kept_rows = [*GOOD_CUSTOMERS, *(c.row for c in CUSTOMER_CASES if c.source == "customers" and c.column is None)]
    kept = pd.read_csv(io.StringIO("\n".join([CUSTOMER_HEADER, *kept_rows])), dtype={"customer_id": str})
    expected_avg = kept.groupby("profitability_segment")["retention_probability"].mean()
    edges = kept["customer_id"].isin(["redge0", "redge1"])
    without_edges = kept[~edges].groupby("profitability_segment")["retention_probability"].mean()
    fit = quarantine_build["fit"]
    got_avg = fit.groupby("profitability_segment")["segment_avg_retention"].agg(["min", "max"])
    for segment in ("Gold", "Tin"):
        # the edge record moves its segment's average, so dropping it would be seen here
        assert abs(expected_avg[segment] - without_edges[segment]) > 0.01
        assert got_avg.loc[segment, "min"] == pytest.approx(expected_avg[segment], abs=1e-12)
        assert got_avg.loc[segment, "max"] == pytest.approx(expected_avg[segment], abs=1e-12)
    fit = fit.set_index("customer_id")
    for customer, retention, segment in (("redge0", 0.0, "Tin"), ("redge1", 1.0, "Gold")):
        assert fit.loc[customer, "retention_probability"] == retention
        deviation = retention - expected_avg[segment]
        assert fit.loc[customer, "retention_deviation"] == pytest.approx(deviation, abs=1e-12)
        assert bool(fit.loc[customer, "is_classification_anomaly"]) == (abs(deviation) > 0.15)


def test_quarter_counts_that_do_not_sum_are_a_warning_not_a_drop(build_warehouse, tmp_path):
    customers = tmp_path / "precomputed.csv"
    customers.write_text(
        "customer_id,profitability_segment,retention_probability,transaction_count,"
        "q1_transactions,q2_transactions,q3_transactions,q4_transactions\n"
        "a,Gold,0.5,10,1,2,3,4\n"
        "b,Gold,0.6,12,1,2,3,4\n"
        "c,Gold,0.7,0,0,0,0,0\n"
    )
    path = build_warehouse(pipeline.BuildOptions(customers=customers))
    tables = warehouse.read_tables(path, {"issues": "marts.data_quality_issues", "fit": "marts.customer_segment_fit"})
    warnings = tables["issues"][tables["issues"]["severity"] == "warning"]
    assert warnings["row_key"].tolist() == ["b"]
    fit = tables["fit"].set_index("customer_id")
    assert fit.loc["b", "quarterly_coverage_gap"] == 2
    assert len(fit) == 3


@pytest.mark.parametrize("content", ["header_only", "one_customer"])
def test_tiny_inputs_build(content, build_warehouse, tmp_path):
    customers = tmp_path / f"{content}.csv"
    rows = [] if content == "header_only" else ["only,Only Customer,S1,2025-06-30,Gold,0.7,50"]
    customers.write_text("\n".join([CUSTOMER_HEADER, *rows]) + "\n")
    transactions = tmp_path / "transactions.csv"
    transactions.write_text(TRANSACTION_HEADER + "\n")
    path = build_warehouse(pipeline.BuildOptions(customers=customers, transactions=transactions))
    tables = warehouse.read_tables(path, {"fit": "marts.customer_segment_fit",
                                          "reconciliation": "marts.input_row_reconciliation",
                                          "summary": "marts.segment_retention_summary"})
    assert len(tables["fit"]) == len(rows)
    assert tables["reconciliation"]["is_reconciled"].all()
    if rows:
        assert not tables["fit"]["is_classification_anomaly"].any()


# ---------------------------------------------------------------- fatal cases: a clear non-zero exit


def _run_build(capsys, tmp_path, *args: str) -> tuple[int, str]:
    code = cli.main(["build", "--warehouse", str(tmp_path / "never.duckdb"), *args])
    return code, capsys.readouterr().err


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


FATAL = {
    "missing_required_column": (b"customer_id,profitability_segment\na,Gold\n", ["retention_probability"]),
    "misspelled_header": (b"customer_id,profitability_segment,retention_probabilty\na,Gold,0.5\n",
                          ["retention_probability", "retention_probabilty"]),
    "empty_file": (b"", ["empty"]),
    "ragged_row": (b"customer_id,profitability_segment,retention_probability\na,Gold,0.5\nb,Gold,0.5,extra\n",
                   ["line 3", "ragged"]),
    "non_utf8_byte": (b"customer_id,profitability_segment,retention_probability\na,Caf\xe9,0.5\n",
                      ["line 2", "UTF-8"]),
}


@pytest.mark.parametrize("name", sorted(FATAL))
def test_fatal_inputs_stop_with_a_message_naming_file_and_problem(name, capsys, tmp_path):
    data, expected = FATAL[name]
    path = _write(tmp_path / f"{name}.csv", data)
    code, err = _run_build(capsys, tmp_path, "--customers", str(path))
    assert code == cli.EXIT_USER_ERROR
    assert str(path) in err
    for text in expected:
        assert text in err
    assert not (tmp_path / "never.duckdb").exists()


def test_missing_transactions_column_names_the_transactions_file(capsys, tmp_path):
    customers = _write(tmp_path / "c.csv", (CUSTOMER_HEADER + "\n" + GOOD_CUSTOMERS[0] + "\n").encode())
    transactions = _write(tmp_path / "t.csv", b"transaction_id,customer_id,amount\nt1,g1,10\n")
    code, err = _run_build(capsys, tmp_path, "--customers", str(customers), "--transactions", str(transactions))
    assert code == cli.EXIT_USER_ERROR
    assert "transactions file" in err and str(transactions) in err and "transaction_date" in err


def test_unreadable_file_is_named(capsys, tmp_path):
    code, err = _run_build(capsys, tmp_path, "--customers", str(tmp_path / "nope.csv"))
    assert code == cli.EXIT_USER_ERROR and "nope.csv" in err and "no such file" in err


@pytest.mark.parametrize("bad", ["x';drop table t;--.csv", 'quo"te.csv', "semi;colon.csv"])
def test_paths_with_quotes_or_semicolons_are_rejected_before_sql(bad, capsys, tmp_path):
    code, err = _run_build(capsys, tmp_path, "--customers", str(tmp_path / bad))
    assert code == cli.EXIT_USER_ERROR
    assert "quote, semicolon" in err


def test_plain_dbt_names_file_and_column_too(tmp_path):
    import subprocess

    customers = _write(tmp_path / "plain.csv", b"customer_id,retention_probability\na,0.5\n")
    result = subprocess.run(
        [warehouse.dbt_executable(), "build", "--select", "stg_customers", "--vars",
         json.dumps({"customers_path": str(customers)}), "--profiles-dir", str(warehouse.PROJECT_DIR / "profiles"),
         "--target-path", str(tmp_path / "target")],
        cwd=warehouse.PROJECT_DIR, env=warehouse.dbt_environment(tmp_path / "plain.duckdb"),
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert str(customers) in result.stdout and "profitability_segment" in result.stdout
