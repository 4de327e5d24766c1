"""Incremental daily loads (#13): transactions files appended one by one (dbt var transactions_load =
append, or `segfit build --append-transactions`) onto a build that stored its transactions
(transactions_load = store, `--store-transactions`) give the marts of one full build (transactions_load =
full, which does not store them) on the files concatenated in load order, and a file that cannot be
appended exactly (onto a full build too) stops the run with one line.

The daily files are cut from the demo transactions by transaction_date, with planted rows that exercise
every path across days: a duplicate of an earlier day's transaction_id, a duplicate within a day, an
orphan customer, an unparseable amount, a blank date, and a late row (dated long before the day it
arrives on) for a record whose segmentation date lies after it. The expected values of the planted
rows come from pandas on the concatenated file, not from the models.

Runtime on the shared 2-core machine: about 3-4 minutes for the first test (5 dbt builds of the demo),
5-6 minutes for the second (5 CLI builds that publish, 4 that stop early).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from python_analysis import pipeline, warehouse
from python_analysis.errors import SegfitError

SEEDS = warehouse.PROJECT_DIR / "seeds"
# build_metadata describes the run (its input file, invocation and time); customer_fit_changes compares a
# build with the one before it (there is none before a single full build): both differ by design
RUN_DESCRIBING_MARTS = {"build_metadata", "customer_fit_changes"}
LAST_DAYS = ("2025-06-28", "2025-06-29", "2025-06-30")


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def daily_files(tmp_path_factory) -> dict[str, object]:
    """Four files: everything up to 2025-06-27, then one file for each of the last three days, with
    planted rows; and their concatenation in that order."""
    root = tmp_path_factory.mktemp("daily")
    transactions = pd.read_csv(SEEDS / "demo_transactions.csv", dtype=str, keep_default_na=False)
    customers = pd.read_csv(SEEDS / "demo_customers.csv", dtype=str, keep_default_na=False)
    dates = transactions["transaction_date"]
    days = [transactions[dates < LAST_DAYS[0]]] + [transactions[dates == day] for day in LAST_DAYS]
    assert all(len(day) > 0 for day in days)

    # a customer with a record segmented in 2024-12 (most demo records are as of 2025-06-30): the late
    # row, dated before the segmentation date, must change that record; the day's rows after the date
    # must not
    segmented = customers[customers["segmentation_date"].between("2024-01-01", "2024-12-31")]
    late_customer = next(c for c in segmented["customer_id"] if (days[0]["customer_id"] == c).any())
    first = days[0].iloc[0]
    planted = {
        1: [  # an earlier day's id again (a duplicate across files), an orphan, an unparseable amount
            {"transaction_id": first["transaction_id"], "customer_id": first["customer_id"],
             "transaction_date": LAST_DAYS[0], "amount": "12.50", "profit": "1"},
            {"transaction_id": "PLANT-ORPHAN", "customer_id": "NO-SUCH-CUSTOMER",
             "transaction_date": LAST_DAYS[0], "amount": "3", "profit": "1"},
            {"transaction_id": "PLANT-AMOUNT", "customer_id": first["customer_id"],
             "transaction_date": LAST_DAYS[0], "amount": "abc", "profit": "1"},
        ],
        2: [  # a late row, a duplicate within the day, a blank date
            {"transaction_id": "PLANT-LATE", "customer_id": late_customer,
             "transaction_date": "2024-02-10", "amount": "77.25", "profit": "5"},
            {"transaction_id": "PLANT-TWICE", "customer_id": late_customer,
             "transaction_date": LAST_DAYS[1], "amount": "5", "profit": "1"},
            {"transaction_id": "PLANT-TWICE", "customer_id": late_customer,
             "transaction_date": LAST_DAYS[1], "amount": "6", "profit": "1"},
            {"transaction_id": "PLANT-NODATE", "customer_id": late_customer,
             "transaction_date": "", "amount": "6", "profit": "1"},
        ],
    }
    for index, rows in planted.items():
        days[index] = pd.concat([days[index], pd.DataFrame(rows)], ignore_index=True)
    files = [_write(day, root / f"day{i}.csv") for i, day in enumerate(days)]
    concatenated = pd.concat(days, ignore_index=True)
    customers_file = _write(customers, root / "customers.csv")
    return {"root": root, "files": files, "all": _write(concatenated, root / "all.csv"),
            "concatenated": concatenated, "customers": customers_file, "late_customer": late_customer,
            "first_id": first["transaction_id"]}


def _plain_dbt(database: Path, target: Path, *args: str) -> subprocess.CompletedProcess:
    """Plain dbt from the project root, as the README runs it, into its own file and target folder."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SEGFIT_", "DBT_"))}
    environment.update({"DO_NOT_TRACK": "1", "DBT_PROFILES_DIR": "profiles", "SEGFIT_DUCKDB_PATH": str(database)})
    return subprocess.run([warehouse.dbt_executable(), *args, "--target-path", str(target), "--log-path",
                           str(target / "logs")], cwd=warehouse.PROJECT_DIR, env=environment, capture_output=True,
                          text=True, timeout=1200)


def _build(database: Path, customers: Path, transactions: Path, *, load: str) -> str:
    result = _plain_dbt(database, database.parent / f"target_{database.stem}", "build", "--vars",
                        f"{{customers_path: '{customers}', transactions_path: '{transactions}', "
                        f"transactions_load: {load}}}")
    assert result.returncode == 0, result.stdout[-4000:]
    return result.stdout


def _tables(database: Path, schema: str) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(database), read_only=True) as con:
        names = [row[0] for row in con.execute(
            "select table_name from information_schema.tables where table_schema = ? order by 1", [schema]).fetchall()]
        return {name: con.execute(f'select * from {schema}."{name}"').df() for name in names}


def _history(database: Path) -> pd.DataFrame:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute("select * from snapshots.customer_segment_fit_history "
                           "order by customer_id, dbt_valid_from").df()


def _assert_same_rows(name: str, left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Row by row after sorting by every non-float column. Integers, text, booleans and dates exactly;
    doubles within 1e-9 relative or 1e-12 absolute: a float sum depends on the order its terms are added
    in (DuckDB adds in parallel, and the appended table holds its rows in another order than the full
    one), which moves the last bits (seen: 5.6e-16 on a segment average, so a deviation of a record whose
    retention equals the average is ~1e-16 in one build and 0 in the other). input_label names the file a
    row came from: a daily file in one build, the concatenation in the other."""
    columns = [c for c in left.columns if c != "input_label"]
    assert list(right.columns) == list(left.columns), name
    floats = [c for c in columns if pd.api.types.is_float_dtype(left[c])]
    exact = [c for c in columns if c not in floats]
    left = left[columns].sort_values(exact).reset_index(drop=True)
    right = right[columns].sort_values(exact).reset_index(drop=True)
    assert len(left) == len(right), f"{name}: {len(left)} rows after appending, {len(right)} in the full build"
    pd.testing.assert_frame_equal(left[exact], right[exact], check_dtype=True, obj=name)
    for column in floats:
        close = np.isclose(left[column], right[column], rtol=1e-9, atol=1e-12, equal_nan=True)
        assert close.all(), f"{name}.{column}: {(~close).sum()} rows differ, e.g. {left.loc[~close, column].head(3).tolist()} vs {right.loc[~close, column].head(3).tolist()}"


KEEPS_STORED_FIT = "customer_segment_fit keeps the stored rows of the records whose transactions did not change"
RECOMPUTES_FIT = "customer_segment_fit recomputes every record: "


def _edit_retention(customers: Path, fit: pd.DataFrame) -> tuple[str, str]:
    """Change the customers file in place, the records kept (so the append guard lets the next day through):
    an anomaly's retention becomes its segment's average (no longer an anomaly), a normal record's moves
    0.3 from it (a new anomaly). Both move their segment's statistics, so every row of the segment changes."""
    frame = pd.read_csv(customers, dtype=str, keep_default_na=False)
    anomaly = fit[fit["is_classification_anomaly"]].iloc[0]
    normal = fit[~fit["is_classification_anomaly"] & (fit["profitability_segment"] != anomaly["profitability_segment"])
                 ].iloc[0]
    for record, retention in ((anomaly, anomaly["segment_avg_retention"]),
                              (normal, normal["segment_avg_retention"] + (0.3 if normal["segment_avg_retention"] < 0.6
                                                                          else -0.3))):
        row = int(record["source_row_number"]) - 1
        assert (frame.loc[row, "customer_id"], frame.loc[row, "subsidiary_id"]) == (record["customer_id"],
                                                                                  record["subsidiary_id"])
        frame.loc[row, "retention_probability"] = f"{retention:.6f}"
    _write(frame, customers)
    return anomaly.name, normal.name


def test_appending_daily_files_gives_the_marts_of_one_full_build(daily_files, tmp_path):
    files = daily_files["files"]
    # the customers file changes in place before the second append (see _edit_retention): the full build
    # below reads it as the last append did
    customers = _write(pd.read_csv(daily_files["customers"], dtype=str, keep_default_na=False),
                       tmp_path / "customers.csv")

    appended = tmp_path / "appended" / "segfit.duckdb"
    appended.parent.mkdir()
    fits, said = [], []
    for i, day in enumerate(files):
        if i == 2:
            edited = _edit_retention(customers, fits[-1])
        said.append(_build(appended, customers, day, load="append" if i > 0 else "store"))
        fits.append(_tables(appended, "marts")["customer_segment_fit"].set_index("customer_record_id"))

    full = tmp_path / "full" / "segfit.duckdb"
    full.parent.mkdir()
    _build(full, customers, daily_files["all"], load="full")

    # an append onto the same customer side rebuilds only the records whose transactions changed (and
    # value_mismatch_z, which the population's revenue moves); after the customers changed, every record
    assert [KEEPS_STORED_FIT in out for out in said] == [False, True, False, True], said
    assert RECOMPUTES_FIT + "2 customer records differ" in said[2]
    assert fits[1].loc[list(edited), "is_classification_anomaly"].tolist() == [True, False]
    assert fits[2].loc[list(edited), "is_classification_anomaly"].tolist() == [False, True]

    full_marts, appended_marts = _tables(full, "marts"), _tables(appended, "marts")
    assert full_marts.keys() == appended_marts.keys()
    for name in sorted(full_marts.keys() - RUN_DESCRIBING_MARTS):
        _assert_same_rows(name, appended_marts[name], full_marts[name])

    # the planted rows, against pandas on the concatenated file (row numbers continue across the files)
    concatenated = daily_files["concatenated"]
    issues = appended_marts["data_quality_issues"].query("source == 'transactions' and severity == 'rejected'")
    reasons = issues.groupby("source_row_number")["reason"].apply(lambda r: " | ".join(sorted(r)))

    def row_of(transaction_id: str, nth: int = 0) -> int:
        return int(np.flatnonzero(concatenated["transaction_id"] == transaction_id)[nth]) + 1

    first_seen = row_of(daily_files["first_id"])
    assert reasons[row_of(daily_files["first_id"], 1)] == f"duplicate transaction_id (first seen at data row {first_seen})"
    assert reasons[row_of("PLANT-TWICE", 1)] == f"duplicate transaction_id (first seen at data row {row_of('PLANT-TWICE')})"
    assert row_of("PLANT-TWICE") not in reasons.index
    assert "orphan" in reasons[row_of("PLANT-ORPHAN")]
    assert reasons[row_of("PLANT-AMOUNT")] == "amount is not a number"
    assert reasons[row_of("PLANT-NODATE")] == "transaction_date is null or blank"
    reconciliation = appended_marts["input_row_reconciliation"].set_index("source")
    assert reconciliation.loc["transactions", "input_rows"] == len(concatenated)

    # the late row (dated 2024-02-10, arriving with day 2) changed its record; the day's other rows did not
    late = appended_marts["customer_segment_fit"].query(
        f"customer_id == '{daily_files['late_customer']}' and segmentation_date < '2025-01-01'")
    assert len(late) == 1
    record = late["customer_record_id"].iloc[0]
    assert fits[2].loc[record, "transaction_count"] == fits[1].loc[record, "transaction_count"] + 1
    assert fits[2].loc[record, "total_revenue"] == pytest.approx(fits[1].loc[record, "total_revenue"] + 77.25)

    # and the last append recomputed only the records the day can change, not all of them
    with duckdb.connect(str(appended), read_only=True) as con:
        through = con.execute("select transactions_through_row, count(*) from "
                              "intermediate.int_customer_transactions_aggregated group by 1 order by 1").fetchall()
    assert through[-1][0] == len(concatenated)
    assert 0 < through[-1][1] < sum(count for _, count in through) / 10, through


def test_a_file_that_cannot_be_appended_exactly_stops_the_build_and_publishes_nothing(daily_files, tmp_path,
                                                                                    caplog):
    files = daily_files["files"]
    customers = _write(pd.read_csv(daily_files["customers"], dtype=str, keep_default_na=False),
                       tmp_path / "customers.csv")
    published = tmp_path / "warehouse" / "segfit.duckdb"
    published.parent.mkdir()

    def append_fails(transactions: Path, message: str, **options) -> None:
        before = published.resolve()
        caplog.clear()
        with caplog.at_level("INFO"), pytest.raises(SegfitError, match="dbt build failed"):
            pipeline.build(pipeline.BuildOptions(customers=customers, transactions=transactions, append=True,
                                                 **options), published)
        said = [r.getMessage() for r in caplog.records if "segfit: transactions_load is append" in r.getMessage()]
        assert said and message in said[0], said
        assert published.resolve() == before

    # a full build does not store its transactions: nothing to append to
    pipeline.build(pipeline.BuildOptions(customers=customers, transactions=files[0]), published)
    append_fails(files[1], "the warehouse has no stored transactions to append to")
    pipeline.build(pipeline.BuildOptions(customers=customers, transactions=files[0], store=True), published)
    history_before = _history(published)
    caplog.clear()
    with caplog.at_level("INFO"):
        pipeline.build(pipeline.BuildOptions(customers=customers, transactions=files[1], append=True), published)
    # the customers file is the stored build's, so the CLI kept its customer-side models: the marts are
    # still those of one full build on the two days concatenated
    assert any("its models are kept" in r.getMessage() for r in caplog.records)
    # and so was the anomaly rule: the CLI left the history snapshot out, which is exact only if no
    # customer's segment, retention or flag can have changed. The history is the stored build's, and its
    # current versions are each customer's latest record in the appended marts (pandas, not the snapshot's SQL)
    assert any("the history snapshot is kept" in r.getMessage() for r in caplog.records)
    history = _history(published)
    pd.testing.assert_frame_equal(history, history_before)
    fit = _tables(published, "marts")["customer_segment_fit"]
    latest = (fit.sort_values(["customer_id", "segmentation_date", "subsidiary_id", "source_row_number"],
                              na_position="first").groupby("customer_id").tail(1))
    checked = ["customer_id", "profitability_segment", "retention_probability", "is_classification_anomaly"]
    current = history.loc[history["dbt_valid_to"].isna(), checked].sort_values("customer_id")
    pd.testing.assert_frame_equal(current.reset_index(drop=True),
                                  latest[checked].sort_values("customer_id").reset_index(drop=True))
    assert _tables(published, "marts")["customer_fit_changes"].empty
    both = _write(pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False) for f in files[:2]]),
                  tmp_path / "days_0_1.csv")
    reference = tmp_path / "reference" / "segfit.duckdb"
    reference.parent.mkdir()
    pipeline.build(pipeline.BuildOptions(customers=customers, transactions=both), reference)
    appended_marts, full_marts = _tables(published, "marts"), _tables(reference, "marts")
    for name in sorted(full_marts.keys() - RUN_DESCRIBING_MARTS):
        _assert_same_rows(name, appended_marts[name], full_marts[name])

    # The next day's append starts from the published build's saved parse (dbt opens every build by its
    # file name, so dbt's partial-parse key, which includes the profile, is the same for every build), and
    # the new file name re-parses nothing: while dbt parses, the models and the sources' YAML see a stand-in
    # for the path (the sources name the CLI's link to the file, in the directory dbt runs in)
    published_parse = published.resolve().parent / "dbt_target" / "partial_parse.msgpack"
    assert published_parse.is_file()
    caplog.clear()
    with caplog.at_level("INFO"):
        pipeline.build(pipeline.BuildOptions(customers=customers, transactions=files[2], append=True), published)
    said = [r.getMessage() for r in caplog.records]
    assert any(f"starts from the saved parse {published_parse}" in line for line in said)
    dbt_log = (published.resolve().parent / "dbt_target" / "logs" / "dbt.log").read_text()
    assert "Partial parsing enabled" in dbt_log and "Unable to do partial parsing" not in dbt_log
    reparsed = {line.split("updated file: ", 1)[1].strip() for line in dbt_log.splitlines()
                if "Partial parsing: updated file: " in line}
    assert not reparsed, reparsed
    assert "0 files deleted, 0 files added, 0 files changed" in dbt_log
    # the links were the source tests' way to the file; the published build keeps none
    assert not [p.name for p in published.resolve().parent.iterdir() if p.is_symlink()]

    # the same day again: every id is stored already
    append_fails(files[1], "is already stored")
    # a var that decided the stored rows' checks changed
    append_fails(files[3], "var 'max_abs_value'", extra_vars=(("max_abs_value", "1e9"),))
    # the customers file changed in place (one record fewer): the stored orphan checks and as-of dates
    # are stale, and only the data can tell
    fewer = pd.read_csv(customers, dtype=str, keep_default_na=False).iloc[1:]
    _write(fewer, customers)
    append_fails(files[3], "the customers changed since the transactions were stored (1 customer records differ)")

    with duckdb.connect(str(published), read_only=True) as con:
        stored = con.execute("select count(*) from intermediate.int_transactions_checked").fetchone()[0]
    assert stored == sum(len(pd.read_csv(f, dtype=str)) for f in files[:3])
