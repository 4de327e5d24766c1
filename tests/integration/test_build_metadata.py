"""marts.build_metadata records what each warehouse was built from; the hashes are recomputed here."""

from __future__ import annotations

import contextlib
import hashlib
import json

import duckdb
import pandas as pd

from python_analysis import pipeline


def _metadata(path) -> dict[str, dict]:
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        frame = con.execute("select * from marts.build_metadata").df()
    return {row["source"]: row for row in frame.to_dict("records")}


def test_a_user_build_records_its_input_file_grain_and_threshold(build_warehouse, tmp_path):
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,profitability_segment,retention_probability\n"
                         "a,Gold,0.9\nb,Gold,0.5\nc,Gold,0.4\nd,Tin,0.2\n")
    options = pipeline.BuildOptions(customers=customers, grain="latest", threshold=0.2)
    rows = _metadata(build_warehouse(options))
    assert set(rows) == {"customers", "transactions"}
    row = rows["customers"]
    assert row["input_label"] == str(customers.resolve())
    assert row["file_name"] == "customers.csv"
    assert row["file_size_bytes"] == customers.stat().st_size
    assert row["file_sha256"] == hashlib.sha256(customers.read_bytes()).hexdigest()
    assert (row["customer_grain"], row["anomaly_threshold"], row["anomaly_threshold_mode"]) == ("latest", 0.2, "absolute")
    assert json.loads(row["vars_json"])["customers_path"] == str(customers.resolve())
    assert rows["transactions"]["input_label"] == "not given" and pd.isna(rows["transactions"]["file_sha256"])


def test_the_demo_build_names_its_seeds(demo_warehouse):
    rows = _metadata(demo_warehouse)
    assert rows["customers"]["input_label"] == "demo seeds (transactions variant)"
    assert pd.isna(rows["customers"]["file_sha256"])
    assert rows["customers"]["dbt_invocation_id"] == rows["transactions"]["dbt_invocation_id"]


def test_the_cli_keeps_dbt_artifacts_in_the_build_directory(demo_warehouse):
    """The CLI's dbt writes target/ and logs/ beside the build file, so plain dbt in the checkout and the
    CLI never share (or overwrite) one target/: the manifest there is the one of this very build."""
    build_file = demo_warehouse.resolve()
    target = build_file.parent / "dbt_target"
    manifest = json.loads((target / "manifest.json").read_text())
    run_results = json.loads((target / "run_results.json").read_text())
    invocation = _metadata(demo_warehouse)["customers"]["dbt_invocation_id"]
    assert manifest["metadata"]["invocation_id"] == run_results["metadata"]["invocation_id"] == invocation
    assert (target / "logs" / "dbt.log").is_file()
