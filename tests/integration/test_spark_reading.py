"""The Spark engine's reading side without Spark: the checks and the report read a Spark warehouse (Parquet
tables at ``DIR/<schema>.db/<table>/``) through ``spark_engine.parquet_views``. Here the Parquet folders are
written from a real DuckDB build (timestamps stored as UTC instants, as Spark writes them), so this runs
under `make test`; the Spark-built marts themselves are compared in tests/spark (`make test-spark`)."""

from __future__ import annotations

import json
import shutil

import duckdb
import pandas as pd
import pytest

from python_analysis import spark_engine, warehouse
from python_analysis.errors import SegfitError


def _spark_like_warehouse(build, folder):
    """``folder/builds/b/wh``: every mart of ``build`` as one Parquet part with Spark's ``_SUCCESS`` marker,
    and the build's dbt artifacts at ``folder/builds/b/dbt_target`` as a Spark build leaves them."""
    root = folder / "builds" / "b"
    target = root / "wh"
    with duckdb.connect(str(build), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        for mart in (*warehouse.MARTS, *warehouse.REPORT_ONLY_MARTS):
            out = spark_engine.table_dir(target, "marts", mart)
            out.mkdir(parents=True)
            kinds = con.execute(f"describe marts.{mart}").fetchall()
            columns = ", ".join(f'cast("{name}" as timestamptz) as "{name}"' if kind == "TIMESTAMP" else f'"{name}"'
                                for name, kind, *_ in kinds)
            literal = str(out / "part-00000.parquet").replace("'", "''")
            con.execute(f"copy (select {columns} from marts.{mart}) to '{literal}' (format parquet)")  # noqa: S608
            (out / "_SUCCESS").touch()
    shutil.copytree(build.resolve().parent / "dbt_target", root / "dbt_target",
                    ignore=shutil.ignore_patterns("logs", "run", "compiled"))
    return target


@pytest.fixture(scope="module")
def spark_like(demo_warehouse, tmp_path_factory):
    return _spark_like_warehouse(demo_warehouse, tmp_path_factory.mktemp("spark_like"))


def test_the_report_reads_the_same_frames_from_parquet_tables(demo_warehouse, spark_like):
    spark_engine.verify_candidate(spark_like)
    expected = warehouse.read_marts(demo_warehouse)
    with spark_engine.parquet_views(spark_like) as views:
        got = warehouse.read_marts(views)
    assert set(got) == set(expected)
    for name, frame in expected.items():
        # same columns, dtypes (timestamps back as UTC wall-clock time) and rows, in READ_ORDER where given
        pd.testing.assert_frame_equal(got[name], frame, check_exact=True, obj=name)


def test_the_marts_are_checked_against_the_spark_builds_own_manifest(spark_like):
    """A contracted column that only the Spark build's manifest names must be missed: the views read that
    manifest, not the project's YAML."""
    manifest_path = spark_like.parent / "dbt_target" / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    node = next(n for n in manifest["nodes"].values()
                if n.get("resource_type") == "model" and n["name"] == "customer_segment_fit")
    node["columns"]["only_in_this_build"] = {"name": "only_in_this_build", "data_type": "double"}
    original = manifest_path.read_text(encoding="utf-8")
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    try:
        with spark_engine.parquet_views(spark_like) as views, \
                pytest.raises(SegfitError, match="marts.customer_segment_fit lacks only_in_this_build"):
            warehouse.read_marts(views)
    finally:
        manifest_path.write_text(original, encoding="utf-8")


def test_an_unfinished_mart_is_not_published(spark_like, tmp_path):
    broken = tmp_path / "wh"
    shutil.copytree(spark_like, broken)
    (broken / "marts.db" / "anomaly_rule_lift" / "_SUCCESS").unlink()
    with pytest.raises(SegfitError, match="no finished table marts.anomaly_rule_lift"):
        spark_engine.verify_candidate(broken)
