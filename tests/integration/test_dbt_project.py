"""The dbt project as analytics engineers use it: plain dbt commands, docs, vars, schemas."""

from __future__ import annotations

import json
import shutil
import subprocess

import duckdb
import pytest

from python_analysis import warehouse


def dbt(args, database, **kwargs):
    command = [warehouse.dbt_executable(), *args, "--profiles-dir", str(warehouse.PROJECT_DIR / "profiles")]
    return subprocess.run(command, cwd=warehouse.PROJECT_DIR, env=warehouse.dbt_environment(database),
                          capture_output=True, text=True, **kwargs)


def test_models_land_in_unprefixed_schemas(demo_warehouse):
    with warehouse.read_only(demo_warehouse) as con:
        schemas = {row[0] for row in con.execute("select distinct table_schema from information_schema.tables")
                   .fetchall()}
    assert {"raw", "staging", "intermediate", "marts"} <= schemas
    assert not any(s.startswith("main_") for s in schemas)


def test_marts_carry_their_descriptions_for_bi_users(demo_warehouse):
    with warehouse.read_only(demo_warehouse) as con:
        table_comment = con.execute(
            "select comment from duckdb_tables() where schema_name = 'marts' and table_name = 'customer_segment_fit'"
        ).fetchone()[0]
        column_comment = con.execute(
            "select comment from duckdb_columns() where schema_name = 'marts' "
            "and table_name = 'customer_segment_fit' and column_name = 'is_classification_anomaly'"
        ).fetchone()[0]
    assert "One row per customer record" in table_comment
    assert "strictly greater" in column_comment


def test_dbt_docs_generate_works(demo_warehouse, tmp_path):
    copy = tmp_path / "docs.duckdb"
    shutil.copyfile(demo_warehouse, copy)
    # what `segfit report` writes back (`make docs` runs the report before `dbt docs generate`)
    with warehouse.read_only(demo_warehouse) as con:
        ids = con.execute("select customer_record_id from marts.classification_anomalies").df()
    warehouse.write_analysis_tables(copy, {
        "anomaly_clusters": ids.assign(cluster_id=0, cluster_label="c0"),
        "anomaly_model_scores": ids.assign(anomaly_probability=0.5, predicted_anomaly=True),
    })
    result = dbt(["docs", "generate", "--target-path", str(tmp_path / "target")], copy)
    assert result.returncode == 0, result.stdout[-3000:]
    catalog = json.loads((tmp_path / "target" / "catalog.json").read_text())
    assert "model.segfit.customer_segment_fit" in catalog["nodes"]
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    assert {"exposure.segfit.segfit_model_report", "exposure.segfit.segment_fit_dashboard"} <= set(
        manifest["exposures"])
    assert "source.segfit.analysis.anomaly_clusters" in manifest["sources"]
    # lineage marts -> report -> analysis tables: the analysis tables are no orphan nodes, and are in the catalog
    report = "exposure.segfit.segfit_model_report"
    for table in ("anomaly_clusters", "anomaly_model_scores"):
        source = f"source.segfit.analysis.{table}"
        assert manifest["child_map"][source] == [report]
        assert source in catalog["sources"]
    assert "model.segfit.customer_segment_fit" in manifest["parent_map"][report]
    docs_recipe = (warehouse.PROJECT_DIR / "Makefile").read_text().split("\ndocs:")[1].split("\n\n")[0]
    assert "segfit run" in docs_recipe, "make docs must run the report so the analysis tables exist"
    # the demo's lineage starts at the demo seeds, and no input source is enabled without a path
    assert manifest["nodes"]["model.segfit.stg_customers"]["depends_on"]["nodes"] == ["seed.segfit.demo_customers"]
    assert not [s for s in manifest["sources"] if s.startswith("source.segfit.segfit_inputs.")]
    # docs blocks: a description shared by several marts is written once
    fit_columns = manifest["nodes"]["model.segfit.customer_segment_fit"]["columns"]
    anomaly_columns = manifest["nodes"]["model.segfit.classification_anomalies"]["columns"]
    assert fit_columns["customer_id"]["description"] == anomaly_columns["customer_id"]["description"] != ""
    assert "doc.segfit.segfit_customer_id" in manifest["docs"]
    # governance: every mart is public, owned by the group, contracted, and declares its key as a constraint
    assert manifest["groups"]["group.segfit.segment_fit"]["owner"]["name"] == "segfit maintainers"
    marts = [n for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["schema"] == "marts"]
    assert len(marts) >= 12
    for node in marts:
        assert (node["access"], node["group"], node["contract"]["enforced"]) == ("public", "segment_fit", True), \
            node["name"]
        model_keys = [c for c in node["constraints"] if c["type"] == "primary_key"]
        column_keys = [name for name, column in node["columns"].items()
                       if any(c["type"] == "not_null" for c in column.get("constraints", []))]
        assert model_keys or column_keys, f"{node['name']} declares no key constraint"


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ("{anomaly_threshold: abc}", "anomaly_threshold"),
        ("{anomaly_threshold: -1}", "anomaly_threshold"),
        ("{customer_grain: weekly}", "customer_grain"),
        ("{anomaly_threshold_mode: percent}", "anomaly_threshold_mode"),
        # a quote in a path is data now (issue 8: O'Brien must work; tests/test_bad_inputs.py); a newline is not
        ("{customers_path: \"x\\nb.csv\"}", "customers_path"),
        ("{anomaly_threshold: '1e400'}", "anomaly_threshold"),
        ("{earliest_plausible_date: '1900-13-01'}", "earliest_plausible_date"),
        ("{customers_path: data.xlsx}", "customers_path"),
        ("{allowed_segments: [\"Premium'); drop\"]}", "allowed_segments"),
        ("{seasonal_peak_min_share: 0.1}", "seasonal_peak_min_share"),
    ],
)
def test_bad_vars_fail_with_a_message_naming_the_var(variables, named, tmp_path):
    result = dbt(["compile", "--select", "customer_segment_fit", "--vars", variables,
                  "--target-path", str(tmp_path / "target")], tmp_path / "vars.duckdb")
    assert result.returncode != 0
    assert f"var '{named}'" in result.stdout, result.stdout[-2000:]


def test_plain_dbt_build_reads_a_users_file_through_vars(tmp_path):
    customers = tmp_path / "customers.csv"
    customers.write_text(
        "customer_id,profitability_segment,retention_probability,extra_column\n"
        "a,Gold,0.9,x\nb,Gold,0.5,y\nc,Gold,0.4,z\nd,Tin,0.2,w\n"
    )
    database = tmp_path / "plain.duckdb"
    result = dbt(["build", "--vars", json.dumps({"customers_path": str(customers)}),
                  "--target-path", str(tmp_path / "target")], database)
    assert result.returncode == 0, result.stdout[-3000:]
    with duckdb.connect(str(database), read_only=True) as con:
        fit = con.execute("select customer_id, is_classification_anomaly from marts.customer_segment_fit "
                          "order by customer_id").fetchall()
        extra = con.execute("select extra_column from staging.stg_customers order by source_row_number").fetchall()
    # Gold average = (0.9 + 0.5 + 0.4) / 3 = 0.6: a (+0.3) and c (-0.2) deviate more than 0.15; Tin has one record
    assert fit == [("a", True), ("b", False), ("c", True), ("d", False)]
    assert [e[0] for e in extra] == ["x", "y", "z", "w"]


def test_failing_rows_of_every_data_test_are_queryable(demo_warehouse, tmp_path):
    """store_failures: each data test leaves a view of its failing rows in schema test_failures."""
    with warehouse.read_only(demo_warehouse) as con:
        views = {r[0] for r in con.execute(
            "select view_name from duckdb_views() where schema_name = 'test_failures'").fetchall()}
    assert len(views) > 100
    view = "accepted_range_customer_segment_fit_retention_probability__1__0"
    assert view in views
    copy = tmp_path / "broken.duckdb"
    shutil.copyfile(demo_warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        assert con.execute(f"select count(*) from test_failures.{view}").fetchone()[0] == 0
        con.execute("update marts.customer_segment_fit set retention_probability = 1.5 "
                    "where customer_record_id = (select min(customer_record_id) from marts.customer_segment_fit)")
        assert con.execute(f"select retention_probability from test_failures.{view}").fetchall() == [(1.5,)]
