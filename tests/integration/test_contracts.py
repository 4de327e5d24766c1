"""One source of column names: the Python layer takes the marts' columns from the dbt contracts.

A copy of the project gets one extra contracted feature column in customer_segment_fit (dbt edits only: the
model, its contract, the feature list of anomaly_feature_comparison and that model's unit-test rows). Built with plain dbt, the new
feature reaches the report's feature table with no Python edit; a mart missing a contracted column is an error.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from python_analysis import contracts, warehouse
from python_analysis.config import ReportConfig
from python_analysis.errors import SegfitError
from python_analysis.report import build_report, formats
from tests.builds import copy_tracked

NEW = "loyalty_index"  # = 2.5 x transaction_count


def _add_feature(project: Path) -> None:
    model = project / "models" / "marts" / "customer_segment_fit.sql"
    anchor = "        cast(value_mismatch_z as {{ segfit_double() }}) as value_mismatch_z,\n"
    text = model.read_text()
    assert anchor in text
    model.write_text(text.replace(anchor, anchor + f"        cast(transaction_count * 2.5 as {{{{ segfit_double() }}}}) "
                                                   f"as {NEW},\n"))
    comparison = project / "models" / "marts" / "anomaly_feature_comparison.sql"
    text = comparison.read_text()
    assert "'value_mismatch_z']" in text
    comparison.write_text(text.replace("'value_mismatch_z']", f"'value_mismatch_z', '{NEW}']"))
    # the comparison's dbt unit test lists every feature's expected row: the new feature adds two (its given
    # rows have no value for it, so n = 0 and no median)
    unit_tests = project / "models" / "marts" / "_marts__unit_tests.yml"
    last = "        - {feature_name: value_mismatch_z, anomaly_group: normal, n: 0, median_value: null}\n"
    text = unit_tests.read_text()
    assert text.count(last) == 1
    unit_tests.write_text(text.replace(last, last + "".join(
        f"        - {{feature_name: {NEW}, anomaly_group: {group}, n: 0, median_value: null}}\n"
        for group in ("anomaly", "normal"))))
    for path in (project / "models" / "marts").glob("*.yml"):
        document = yaml.safe_load(path.read_text())
        changed = False
        for entry in document.get("models") or []:
            if entry["name"] in ("customer_segment_fit", "classification_anomalies"):
                names = [c["name"] for c in entry["columns"]]
                entry["columns"].insert(names.index("value_mismatch_z") + 1,
                                        {"name": NEW, "data_type": "double", "description": "A new feature."})
                changed = True
        if changed:
            path.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.fixture(scope="module")
def extended_build(tmp_path_factory) -> Path:
    project = copy_tracked(tmp_path_factory.mktemp("extended") / "segfit")
    _add_feature(project)
    database = project / "build" / "segfit.duckdb"
    database.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGFIT_", "DBT_"))}
    env.update({"DO_NOT_TRACK": "1", "DBT_PROFILES_DIR": "profiles", "SEGFIT_DUCKDB_PATH": str(database),
                "DBT_TARGET_PATH": str(database.parent / "dbt_target")})
    done = subprocess.run([warehouse.dbt_executable(), "build", "--target", "prod"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:]
    return database


def test_a_new_contracted_feature_reaches_the_report_feature_table(extended_build):
    found = contracts.for_build(extended_build)
    assert NEW in contracts.column_names(found, "customer_segment_fit")
    marts = warehouse.read_tables(extended_build, {m: f"marts.{m}" for m in warehouse.MARTS})
    contracts.require_columns(marts, found)
    report = build_report(marts, ReportConfig(cv_repeats=2, dpi=40))
    fit = marts["customer_segment_fit"]
    anomaly = fit["is_classification_anomaly"].astype(bool)
    expected_mean = float((fit.loc[anomaly, "transaction_count"] * 2.5).mean())
    table = report.context.stats.comparison.set_index("feature_name")
    assert table.loc[NEW, "n_anomaly"] == anomaly.sum()
    assert table.loc[NEW, "mean_anomaly"] == pytest.approx(expected_mean, rel=1e-9)
    order = report.context.stats.comparison["feature_name"].tolist()
    assert order.index(NEW) == order.index("value_mismatch_z") + 1  # in the dbt model's order
    assert f"| {NEW} | {formats.count(anomaly.sum())} | {formats.num(expected_mean)} |" in report.markdown


def test_a_mart_without_a_contracted_column_is_an_error(extended_build):
    found = contracts.for_build(extended_build)
    marts = warehouse.read_tables(extended_build, {"customer_segment_fit": "marts.customer_segment_fit"})
    marts["customer_segment_fit"] = marts["customer_segment_fit"].drop(columns=[NEW, "retention_probability"])
    with pytest.raises(SegfitError, match=f"marts.customer_segment_fit lacks retention_probability, {NEW}"):
        contracts.require_columns(marts, found)
    assert isinstance(marts["customer_segment_fit"], pd.DataFrame)
