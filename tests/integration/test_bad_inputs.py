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
    # issue 8 case 12: a finite value beyond the realistic bound (var max_abs_value, 1e15)
    Case("score_beyond_bound", "customers", "big,R,S1,2025-06-30,Gold,0.6,1e200", "comprehensive_customer_score",
         "beyond the plausible bound"),
    # a digit separator is not a number (DuckDB alone would read 1_000 as 1000)
    Case("underscore_number", "customers", "under,R,S1,2025-06-30,Gold,0.6,1_000", "comprehensive_customer_score",
         "not a number"),
    # issue 8 case 13: date keywords and implausible dates
    Case("infinity_date", "customers", "dinf,R,S1,infinity,Gold,0.6,50", "segmentation_date", "not a finite date"),
    Case("minus_infinity_date", "customers", "dminf,R,S1,-infinity,Gold,0.6,50", "segmentation_date",
         "not a finite date"),
    Case("epoch_date", "customers", "depoch,R,S1,epoch,Gold,0.6,50", "segmentation_date", "not a valid date"),
    Case("two_digit_year", "customers", "dyy,R,S1,24-06-30,Gold,0.6,50", "segmentation_date",
         "before 1900-01-01 (var earliest_plausible_date)"),
    Case("future_segmentation_date", "customers", "dfut,R,S1,2999-06-30,Gold,0.6,50", "segmentation_date",
         "in the future"),
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
    Case("amount_beyond_bound", "transactions", "t_huge,g1,2025-01-10,1e200,1.00", "amount",
         "beyond the plausible bound"),
    Case("profit_beyond_bound", "transactions", "t_hugep,g1,2025-01-10,10.00,-2e15", "profit",
         "beyond the plausible bound"),
    Case("underscore_amount", "transactions", "t_under,g1,2025-01-10,1_000,1.00", "amount", "not a number"),
    Case("infinity_transaction_date", "transactions", "t_inf,g1,infinity,10.00,1.00", "transaction_date",
         "not a finite date"),
    Case("minus_infinity_transaction_date", "transactions", "t_minf,g1,-infinity,10.00,1.00", "transaction_date",
         "not a finite date"),
    Case("epoch_transaction_date", "transactions", "t_epoch,g1,epoch,10.00,1.00", "transaction_date",
         "not a valid date"),
    Case("two_digit_year_transaction", "transactions", "t_yy,g1,25-01-10,10.00,1.00", "transaction_date",
         "before 1900-01-01"),
    # issue 8 case 14: an offset in text is converted to UTC: 07:30+09 on 1 April is 22:30 UTC on 31 March (Q1)
    Case("utc_offset_kept", "transactions", "t_tz,g3,2025-04-01 07:30:00+09:00,10.00,1.00", None, None),
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


def test_text_offsets_are_converted_to_utc(quarantine_build):
    fit = quarantine_build["fit"].set_index("customer_id")
    # t_tz is g3's only transaction: 2025-04-01 07:30+09:00 = 2025-03-31 22:30 UTC, a first-quarter date
    assert (fit.loc["g3", "q1_transactions"], fit.loc["g3", "q2_transactions"]) == (1, 0)


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
    # issue 8 case 16: an unterminated quote is an error naming its line, never a segment '"Gold'
    "unterminated_quote": (b'customer_id,profitability_segment,retention_probability\na,Gold,0.5\nb,"Gold,0.6\n'
                           b"c,Tin,0.3\n", ["line 3", "unterminated quote"]),
    "unterminated_quote_last_line": (b'customer_id,profitability_segment,retention_probability\na,Gold,0.5\n'
                                     b'b,"Gold,0.6\n', ["line 3", "unterminated quote"]),
    # issue 8 case 17: CR-only line ends are read; a ragged row in such a file is named
    "ragged_row_cr_line_ends": (b"customer_id,profitability_segment,retention_probability\ra,Gold,0.5\r"
                                b"b,Gold,0.5,extra\r", ["line 3", "ragged"]),
    # issue 8 case 17: a line over DuckDB's 2 MB limit is a clear error, not a csv-module traceback
    "line_over_2mb": (b"customer_id,profitability_segment,retention_probability\na," + b"G" * 2_200_000 + b",0.5\n",
                      ["longer than the CSV reader's limit"]),
    # header matching ignores a BOM and case: two headers meaning one column must not be resolved silently
    # (DuckDB itself renames an exact case-insensitive repeat to Customer_ID_1, which passes through)
    "duplicate_header": (b"customer_id,profitability_segment,retention_probability,\xef\xbb\xbfcustomer_id\n"
                         b"a,Gold,0.5,b\n", ["both mean 'customer_id'"]),
    "reserved_header": (b"customer_id,profitability_segment,retention_probability,input_label\na,Gold,0.5,b\n",
                        ["'input_label'", "reserves"]),
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


def test_paths_with_control_characters_are_rejected(capsys, tmp_path):
    code, err = _run_build(capsys, tmp_path, "--customers", str(tmp_path / "new\nline.csv"))
    assert code == cli.EXIT_USER_ERROR
    assert "control character" in err


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


# ------------------------------------------------- issue 8: inputs are data, never code (security cases)

GOOD_CUSTOMER_ROWS = "\n".join(GOOD_CUSTOMERS) + "\n"
# names a payload would write if it ran; the tests look for them wherever a relative path could land
PWNED = ("pwned.csv", "x.csv")


def _payload_files(*folders: Path) -> list[Path]:
    places = {Path.cwd(), warehouse.PROJECT_DIR, *folders}
    return [place / name for place in places for name in PWNED if (place / name).exists()]


def _customer_ids(path: Path) -> list[str]:
    fit = warehouse.read_tables(path, {"fit": "marts.customer_segment_fit"})["fit"]
    return sorted(fit["customer_id"])


def test_header_names_are_identifiers_never_sql(build_warehouse, tmp_path):
    """Case 1: a header that closes the quoted identifier stays one column name. (With the old quoting and
    a column `x` in the file, this header made the secret file's content a column `pwn` of staging.)"""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    payload = f"x\" as xx, (select content from read_text('{secret}')) as pwn, --"
    header = CUSTOMER_HEADER + ',x,"' + payload.replace('"', '""') + '"'
    rows = [row + ",1,p" for row in GOOD_CUSTOMERS]
    customers = _write(tmp_path / "customers.csv", ("\n".join([header, *rows]) + "\n").encode())
    path = build_warehouse(pipeline.BuildOptions(customers=customers))
    staged = warehouse.read_tables(path, {"s": "staging.stg_customers"})["s"]
    assert "pwn" not in staged.columns and "xx" not in staged.columns
    assert staged[payload.lower()].tolist() == ["p"] * len(rows)  # the literal name, holding its own values
    assert not staged.astype(str).apply(lambda column: column.str.contains("TOP-SECRET")).any().any()


def test_a_header_with_a_double_quote_builds(build_warehouse, tmp_path):
    """Case 1: a plain `a"b` header used to break the build; it is an ordinary extra column."""
    header = CUSTOMER_HEADER + ',"a""b"'
    rows = [row + ",q" for row in GOOD_CUSTOMERS]
    customers = _write(tmp_path / "customers.csv", ("\n".join([header, *rows]) + "\n").encode())
    path = build_warehouse(pipeline.BuildOptions(customers=customers))
    staged = warehouse.read_tables(path, {"s": "staging.stg_customers"})["s"]
    assert staged['a"b'].tolist() == ["q"] * len(rows)


def test_jinja_in_a_var_value_is_refused_before_dbt(capsys, tmp_path):
    """Case 2: dbt renders {{ }} in --vars values, so segfit never passes one."""
    customers = _write(tmp_path / "c.csv", (CUSTOMER_HEADER + "\n" + GOOD_CUSTOMER_ROWS).encode())
    for value in ("{{ 7*7 }}", "{% do run_query(modules.re.escape(target.name)) %}", "{# x #}"):
        code, err = _run_build(capsys, tmp_path, "--customers", str(customers), "--var", f"rule_seasonality_cv={value}")
        assert code == cli.EXIT_USER_ERROR
        assert "Jinja" in err
    assert not (tmp_path / "never.duckdb").exists()


def test_a_file_named_like_a_template_is_read_literally(build_warehouse, tmp_path):
    """Case 2: {{7*7}}.csv is that file, not 49.csv (which exists here with other customers)."""
    folder = tmp_path / "jinja"
    folder.mkdir()
    customers = _write(folder / "{{7*7}}.csv", (CUSTOMER_HEADER + "\n" + GOOD_CUSTOMER_ROWS).encode())
    _write(folder / "49.csv", (CUSTOMER_HEADER + "\nwrong1,W,S1,2025-06-30,Gold,0.5,1\n").encode())
    path = build_warehouse(pipeline.BuildOptions(customers=customers))
    assert _customer_ids(path) == sorted(row.split(",")[0] for row in GOOD_CUSTOMERS)


def test_quotes_in_paths_are_data_and_a_symlink_target_is_not_sql(build_warehouse, tmp_path):
    """Case 3: a folder named O'Brien works end to end; a symlink whose target's name is SQL runs nothing."""
    folder = tmp_path / "O'Brien"
    folder.mkdir()
    target = _write(folder / "t'); copy (select 1) to 'pwned.csv'; select ('.csv",
                    (CUSTOMER_HEADER + "\n" + GOOD_CUSTOMER_ROWS).encode())
    link = folder / "customers.csv"
    link.symlink_to(target)
    transactions = _write(folder / "O'Brien's transactions.csv",
                          (TRANSACTION_HEADER + "\n" + "\n".join(GOOD_TRANSACTIONS[:3]) + "\n").encode())
    path = build_warehouse(pipeline.BuildOptions(customers=link, transactions=transactions))
    assert _customer_ids(path) == sorted(row.split(",")[0] for row in GOOD_CUSTOMERS)
    fit = warehouse.read_tables(path, {"fit": "marts.customer_segment_fit"})["fit"].set_index("customer_id")
    assert fit.loc["g1", "transaction_count"] == 2 and fit.loc["g2", "transaction_count"] == 1
    assert _payload_files(tmp_path, folder) == []


def test_glob_characters_in_file_names_are_literal(build_warehouse, tmp_path):
    """Case 4: c[1].csv is not c1.csv, and t*.csv does not union the folder."""
    folder = tmp_path / "globs"
    folder.mkdir()
    customers = _write(folder / "c[1].csv", (CUSTOMER_HEADER + "\n" + GOOD_CUSTOMER_ROWS).encode())
    _write(folder / "c1.csv", (CUSTOMER_HEADER + "\nwrong1,W,S1,2025-06-30,Gold,0.5,1\n").encode())
    mine = GOOD_TRANSACTIONS[:3]
    transactions = _write(folder / "t*.csv", (TRANSACTION_HEADER + "\n" + "\n".join(mine) + "\n").encode())
    _write(folder / "t-other.csv", (TRANSACTION_HEADER + "\nt9,g1,2025-01-10,1.00,1.00\n").encode())
    path = build_warehouse(pipeline.BuildOptions(customers=customers, transactions=transactions))
    assert _customer_ids(path) == sorted(row.split(",")[0] for row in GOOD_CUSTOMERS)
    reconciliation = warehouse.read_tables(path, {"r": "marts.input_row_reconciliation"})["r"].set_index("source")
    assert reconciliation.loc["transactions", "input_rows"] == len(mine)
    assert reconciliation.loc["customers", "input_rows"] == len(GOOD_CUSTOMERS)


# ------------------------------------------------- issue 8: parsing and typing

def test_a_quoted_field_after_row_20000_parses(build_warehouse, tmp_path):
    """Case 15: explicit RFC 4180 dialect, nothing guessed from a sample."""
    rows = [f"c{i},Name {i},S1,2025-06-30,{'Gold' if i % 2 else 'Tin'},0.5,10" for i in range(25_000)]
    rows[21_000] = 'quoted,"Smith, John",S1,2025-06-30,Gold,0.5,10'
    customers = _write(tmp_path / "late_quote.csv", ("\n".join([CUSTOMER_HEADER, *rows]) + "\n").encode())
    path = build_warehouse(pipeline.BuildOptions(customers=customers))
    fit = warehouse.read_tables(path, {"fit": "marts.customer_segment_fit"})["fit"].set_index("customer_id")
    assert len(fit) == len(rows)
    assert fit.loc["quoted", "customer_name"] == "Smith, John"


def test_precheck_reads_a_huge_header_field_and_cr_line_ends(tmp_path):
    """Case 17: what DuckDB reads, the pre-check reads (the csv module used to fail on these)."""
    from python_analysis.warehouse import inputs

    wide = _write(tmp_path / "wide_header.csv", (
        "customer_id,profitability_segment,retention_probability," + "h" * 200_000 + "\na,Gold,0.5,x\n").encode())
    assert inputs.validate_input_file(wide, "customers") == wide
    cr = _write(tmp_path / "cr.csv", b"customer_id,profitability_segment,retention_probability\ra,Gold,0.5\r")
    assert inputs.validate_input_file(cr, "customers") == cr


def test_parquet_column_named_file_row_number_is_a_clear_error(capsys, tmp_path):
    """Case 18: the reader's row-number column cannot clash with the file's own."""
    pd.DataFrame({"customer_id": ["a"], "profitability_segment": ["Gold"], "retention_probability": [0.5],
                  "file_row_number": [7]}).to_parquet(tmp_path / "c.parquet")
    code, err = _run_build(capsys, tmp_path, "--customers", str(tmp_path / "c.parquet"))
    assert code == cli.EXIT_USER_ERROR
    assert "'file_row_number'" in err and "reserves" in err


@pytest.fixture(scope="module")
def parquet_build(build_warehouse, tmp_path_factory):
    """Case 14 and the float32 item: Parquet input, built with TZ=Asia/Tokyo in dbt's environment."""
    import numpy as np

    folder = tmp_path_factory.mktemp("parquet")
    # float32 retention: the decimals as written, and their float32 storage
    retention = {"a1": "0.8", "a2": "0.5", "b1": "0.9", "b2": "0.5", "b3": "0.4"}
    segment = {"a1": "A", "a2": "A", "b1": "B", "b2": "B", "b3": "B"}
    ids = sorted(retention)
    pd.DataFrame({
        "customer_id": ids,
        "profitability_segment": [segment[i] for i in ids],
        "retention_probability": np.array([float(retention[i]) for i in ids], dtype=np.float32),
        "segmentation_date": pd.to_datetime(["2024-12-31"] * len(ids)),
    }).to_parquet(folder / "customers.parquet")
    instants = {"tx1": "2024-03-31 23:30:00+00:00", "tx2": "2024-04-01 00:30:00+00:00"}
    pd.DataFrame({
        "transaction_id": list(instants),
        "customer_id": ["a1", "a1"],
        "transaction_date": pd.to_datetime(list(instants.values()), utc=True),
        "amount": [10.0, 20.0],
    }).to_parquet(folder / "transactions.parquet")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "Asia/Tokyo")
        path = build_warehouse(pipeline.BuildOptions(customers=folder / "customers.parquet",
                                                     transactions=folder / "transactions.parquet"))
    fit = warehouse.read_tables(path, {"fit": "marts.customer_segment_fit"})["fit"].set_index("customer_id")
    return {"fit": fit, "retention": retention, "segment": segment, "instants": instants}


def test_time_zone_aware_parquet_timestamps_are_read_in_utc(parquet_build):
    expected = pd.Series(pd.to_datetime(list(parquet_build["instants"].values()), utc=True).quarter).value_counts()
    fit = parquet_build["fit"]
    assert fit.loc["a1", "q1_transactions"] == expected.get(1, 0) == 1
    assert fit.loc["a1", "q2_transactions"] == expected.get(2, 0) == 1


def test_float32_retention_is_read_at_its_decimal_value(parquet_build):
    """0.8 stored as float32 is 0.800000011920929: read as double, segment A's deviation would be
    0.1500000060 > 0.15 and both records anomalies. The decimals as written decide the boundary."""
    from fractions import Fraction

    retention, segment = parquet_build["retention"], parquet_build["segment"]
    fit = parquet_build["fit"]
    for customer, value in retention.items():
        members = [Fraction(v) for c, v in retention.items() if segment[c] == segment[customer]]
        deviation = Fraction(value) - sum(members) / len(members)
        assert bool(fit.loc[customer, "is_classification_anomaly"]) == (abs(deviation) > Fraction("0.15")), customer
        assert fit.loc[customer, "retention_probability"] == float(value)
    assert not fit.loc["a1", "is_classification_anomaly"]  # the boundary case itself: exactly 0.15


def test_segment_labels_that_differ_only_in_case_are_a_warning(build_warehouse, tmp_path):
    rows = ["a,Premium,0.9", "b,Premium,0.5", "c,premium,0.3", "d,PREMIUM,0.4", "e,PREMIUM,0.6", "f,Basic,0.2"]
    customers = _write(tmp_path / "case.csv",
                       ("customer_id,profitability_segment,retention_probability\n" + "\n".join(rows) + "\n").encode())
    path = build_warehouse(pipeline.BuildOptions(customers=customers))
    issues = warehouse.read_tables(path, {"i": "marts.data_quality_issues"})["i"]
    warnings = issues[(issues["severity"] == "warning") & (issues["column_name"] == "profitability_segment")]
    # oracle: per lower-cased label, every spelling but the most common (ties: sort order), at its first row
    frame = pd.DataFrame([r.split(",") for r in rows], columns=["id", "segment", "r"])
    frame["row"] = range(1, len(rows) + 1)
    spellings = frame.groupby("segment").agg(n=("id", "size"), first=("row", "min")).reset_index()
    spellings["folded"] = spellings["segment"].str.lower()
    spellings = spellings.sort_values(["folded", "n", "segment"], ascending=[True, False, True])
    expected = spellings[spellings.duplicated("folded")]
    assert sorted(zip(warnings["source_row_number"], warnings["issue_value"], strict=True)) == sorted(
        zip(expected["first"], expected["segment"], strict=True))
    assert warnings["reason"].str.contains("differs only in letter case").all()
    fit = warehouse.read_tables(path, {"fit": "marts.customer_segment_fit"})["fit"]
    assert len(fit) == len(rows)  # a warning, nothing dropped


# ------------------------------------------------- issue 8 case 19 and the numbers in vars


def test_exponent_and_signed_numbers_are_accepted(build_warehouse, tmp_path, capsys):
    customers = _write(tmp_path / "c.csv", (CUSTOMER_HEADER + "\n" + GOOD_CUSTOMER_ROWS).encode())
    args = cli.parser().parse_args(["build", "--customers", str(customers), "--threshold", "1e20",
                                    "--var", "rule_seasonality_cv=1e+3", "--var", "lifecycle_mature_days=+1"])
    options = cli._build_options(args)
    assert options.threshold == 1e20
    path = build_warehouse(options)
    tables = warehouse.read_tables(path, {"fit": "marts.customer_segment_fit", "lift": "marts.anomaly_rule_lift"})
    assert (tables["fit"]["anomaly_threshold"] == 1e20).all()
    assert not tables["fit"]["is_classification_anomaly"].any()


@pytest.mark.parametrize("value", ["1_000", "nan", "inf", "0x10", "1,5"])
def test_threshold_must_be_a_plain_finite_number(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parser().parse_args(["build", "--threshold", value])
    assert exit_info.value.code == 2
    assert "must be a finite number" in capsys.readouterr().err


def test_underscore_in_a_number_var_is_refused(capsys, tmp_path):
    customers = _write(tmp_path / "c.csv", (CUSTOMER_HEADER + "\n" + GOOD_CUSTOMER_ROWS).encode())
    code = cli.main(["build", "--warehouse", str(tmp_path / "w.duckdb"), "--customers", str(customers),
                     "--var", "rule_seasonality_cv=1_000"])
    assert code == cli.EXIT_USER_ERROR
    assert not (tmp_path / "w.duckdb").exists()


# ------------------------------------------------- issue 8 case 12: the model inputs are checked


def test_non_finite_or_oversized_features_stop_the_report_with_one_line():
    import numpy as np

    from python_analysis import modeling
    from python_analysis.config import ReportConfig
    from python_analysis.errors import SegfitError

    frame = pd.DataFrame({"customer_record_id": ["r1", "r2", "r3"], "total_revenue": [1.0, 1e200, 2.0],
                          "net_profit": [1.0, np.inf, 3.0], "transaction_count": [1.0, np.nan, 2.0]})
    with pytest.raises(SegfitError, match=r"feature 'total_revenue'.*r2"):
        modeling.feature_matrix(frame, ["total_revenue"], [], ReportConfig())
    with pytest.raises(SegfitError, match=r"feature 'net_profit'.*r2"):
        modeling.feature_matrix(frame, ["net_profit"], [], ReportConfig(), dtype=np.float64)
    matrix = modeling.feature_matrix(frame, ["transaction_count"], [], ReportConfig())  # NaN: imputed, as before
    assert matrix.X[:, 0].tolist() == [1.0, 1.5, 2.0]
