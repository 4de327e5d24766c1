"""When an append leaves the history snapshot out (pipeline._same_flag_rule): only when the published build
flagged anomalies with this build's threshold and mode, as its marts.build_metadata records them
(pipeline._published_metadata)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from python_analysis import pipeline


def _published(tmp_path: Path, rows: list[tuple[str, float, str]]) -> Path:
    path = tmp_path / "published.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.build_metadata (source text, file_sha256 text, anomaly_threshold double, "
                    "anomaly_threshold_mode text)")
        con.executemany("insert into marts.build_metadata values (?, 'a1b2', ?, ?)", rows)
    return path


STORED = [("customers", 0.15, "absolute"), ("transactions", 0.15, "absolute")]


@pytest.mark.parametrize(("options", "same"), [
    ({}, True),
    ({"threshold": 0.2}, False),
    ({"threshold_mode": "relative"}, False),
    ({"extra_vars": (("anomaly_threshold", "0.15"),)}, True),
    ({"extra_vars": (("anomaly_threshold", "0.2"),)}, False),
    ({"extra_vars": (("anomaly_threshold", "not a number"),)}, False),
])
def test_the_snapshot_is_left_out_only_under_the_stored_anomaly_rule(tmp_path, options, same):
    published = _published(tmp_path, STORED)
    built = pipeline.BuildOptions(customers=tmp_path / "c.csv", transactions=tmp_path / "t.csv", append=True,
                                  **options)
    assert pipeline._same_flag_rule(pipeline._published_metadata(published), built) is same


def test_a_warehouse_whose_rows_disagree_keeps_the_snapshot(tmp_path):
    # a partial run can leave the two rows with different rules: then nothing is known, and the snapshot runs
    published = _published(tmp_path, [("customers", 0.15, "absolute"), ("transactions", 0.2, "absolute")])
    built = pipeline.BuildOptions(customers=tmp_path / "c.csv", transactions=tmp_path / "t.csv", append=True)
    assert pipeline._same_flag_rule(pipeline._published_metadata(published), built) is False
