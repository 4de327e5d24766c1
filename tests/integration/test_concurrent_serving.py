"""Readers and builds never block each other, and a reader always sees one complete set of marts."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from python_analysis import warehouse
from python_analysis.warehouse import publishing

READER = r"""
import json, sys, time, duckdb
path, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
import os
reads, errors, counts = 0, [], set()
while not os.path.exists(stop):
    try:
        con = duckdb.connect(path, read_only=True)
        try:
            summary = con.execute("select sum(anomaly_count) from marts.segment_retention_summary").fetchone()[0]
            ranked = con.execute("select count(*) from marts.classification_anomalies").fetchone()[0]
            fit = con.execute(
                "select count(*) from marts.customer_segment_fit where is_classification_anomaly").fetchone()[0]
        finally:
            con.close()
        reads += 1
        counts.add(int(ranked))
        if not (summary == ranked == fit):
            errors.append(f"inconsistent snapshot: summary={summary} anomalies={ranked} fit={fit}")
    except Exception as exc:  # every failure to read is a finding
        errors.append(f"{type(exc).__name__}: {exc}")
    time.sleep(0.01)
json.dump({"reads": reads, "errors": errors[:20], "error_count": len(errors), "counts": sorted(counts)},
          open(out, "w"))
"""


def _segfit(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).with_name("segfit")), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def published(demo_warehouse, tmp_path) -> Path:
    target = tmp_path / "serve" / "segfit.duckdb"
    target.parent.mkdir()
    shutil.copyfile(demo_warehouse, target)
    return target


def _publish_small_warehouse(published: Path, label: str) -> None:
    """Publish a tiny warehouse (the mart publish checks for, plus a labelled table) at ``published``."""
    slot = publishing.new_slot(published)
    with duckdb.connect(str(slot.target)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.customer_segment_fit as select 1 as customer_record_id")
        con.execute("create table marts.snapshot as select ? as label, range as n from range(1000)", [label])
    publishing.publish(published, slot)


def test_publish_puts_a_new_file_at_the_published_path_and_old_handles_keep_the_old_bytes(tmp_path):
    """Deterministic form of the concurrent-readers test: what a reader can observe of one publish.

    A publish must make the published path name a *new* file (``os.stat`` follows a symlink, so this holds
    for a rename or a symlink swap alike) and must leave a file opened before it untouched, byte for byte.
    An in-place copy over the published file fails both."""
    published = tmp_path / "serve" / "segfit.duckdb"
    _publish_small_warehouse(published, "first")
    old_bytes = published.read_bytes()
    old_inode = os.stat(published).st_ino
    with open(published, "rb") as before:  # a reader that opened the file before the next publish
        _publish_small_warehouse(published, "second")
        assert os.stat(published).st_ino != old_inode, "publish rewrote the published file in place"
        assert before.read() == old_bytes, "a handle opened before the publish no longer reads the old bytes"
    assert published.read_bytes() != old_bytes
    with duckdb.connect(str(published), read_only=True) as con:
        assert con.execute("select distinct label from marts.snapshot").fetchall() == [("second",)]


def test_readers_see_consistent_snapshots_while_two_rebuilds_run(published, tmp_path):
    stop = tmp_path / "stop"
    readers = [
        subprocess.Popen([sys.executable, "-c", READER, str(published), str(stop), str(tmp_path / f"r{i}.json")])
        for i in range(3)
    ]
    try:
        time.sleep(1.0)
        # two full rebuilds with different thresholds, so the snapshots differ in their anomaly counts
        for threshold in ("0.12", "0.15"):
            build = _segfit("build", "--warehouse", str(published), "--threshold", threshold)
            _, err = build.communicate(timeout=600)
            assert build.returncode == 0, err[-3000:]
            time.sleep(0.5)
    finally:
        stop.touch()
        for reader in readers:
            reader.wait(timeout=120)
    results = [json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(3)]
    for result in results:
        assert result["error_count"] == 0, result["errors"]
        assert result["reads"] > 10
    seen = set().union(*(set(r["counts"]) for r in results))
    assert len(seen) >= 2, f"readers never saw a rebuilt snapshot: {seen}"


def test_a_reader_holding_the_file_does_not_block_a_build(published):
    holder = duckdb.connect(str(published), read_only=True)
    try:
        before = holder.execute("select count(*) from marts.classification_anomalies").fetchone()[0]
        build = _segfit("build", "--warehouse", str(published), "--threshold", "0.10")
        _, err = build.communicate(timeout=600)
        assert build.returncode == 0, err[-3000:]
        # the open connection still reads its own complete snapshot
        assert holder.execute("select count(*) from marts.classification_anomalies").fetchone()[0] == before
    finally:
        holder.close()
    with warehouse.read_only(published) as con:
        after = con.execute("select count(*) from marts.classification_anomalies").fetchone()[0]
    assert after > before


def _unpublished_builds(published: Path) -> list[Path]:
    builds = publishing.builds_dir(published)
    if not builds.is_dir():
        return []
    return [d for d in builds.iterdir() if d.is_dir() and not (d / publishing.PUBLISHED_MARK).exists()]


def test_a_killed_build_leaves_the_published_marts_unchanged(published):
    digest = _digest(published)
    build = _segfit("build", "--warehouse", str(published), "--threshold", "0.05", start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        files = [d / published.name for d in _unpublished_builds(published)]
        if any(f.exists() and f.stat().st_size > 1_000_000 for f in files):  # dbt is writing into it
            break
        time.sleep(0.05)
    else:
        build.kill()
        pytest.fail("the build never started writing its build file")
    os.killpg(build.pid, signal.SIGKILL)
    build.wait(timeout=30)
    time.sleep(0.5)
    assert _digest(published) == digest
    with warehouse.read_only(published) as con:
        assert con.execute("select count(*) from marts.customer_segment_fit").fetchone()[0] > 0
    assert _unpublished_builds(published), "the killed build's directory should be there until the next build"
    # the next build sweeps the dead build's leftovers and publishes normally
    rebuild = _segfit("build", "--warehouse", str(published))
    _, err = rebuild.communicate(timeout=600)
    assert rebuild.returncode == 0, err[-3000:]
    assert not _unpublished_builds(published)


def test_sqlalchemy_tools_read_through_duckdb_engine(published):
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"duckdb:///{published}?access_mode=read_only")
    try:
        with engine.connect() as con:
            anomalies = con.execute(sqlalchemy.text("select count(*) from marts.classification_anomalies")).scalar()
            summary = con.execute(
                sqlalchemy.text("select sum(anomaly_count) from marts.segment_retention_summary")).scalar()
            try:
                con.execute(sqlalchemy.text("create table marts.scratch as select 1 as x"))
                wrote = True
            except sqlalchemy.exc.DBAPIError:
                wrote = False
    finally:
        engine.dispose()
    assert anomalies == summary > 0
    assert not wrote, "a BI connection must be read-only"
