"""Serving real BI clients: fresh data in long-lived processes, pooled clients, the CLI and the README recipes.

Every connection example in the README's "Connect your BI tool" section is run here, as written, from a
folder laid out like the repo root (``.venv`` and ``warehouse/segfit.duckdb``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

from python_analysis import pipeline, serving, warehouse
from tests.builds import publish_copy

README = warehouse.PROJECT_DIR / "README.md"
COUNT_SQL = "select count(*) from marts.classification_anomalies"


@pytest.fixture(scope="module")
def builds(build_warehouse, demo_warehouse) -> tuple[Path, Path]:
    """Two real builds with different anomaly counts."""
    other = build_warehouse(pipeline.BuildOptions(threshold=0.10))
    return demo_warehouse, other


def _count(path: Path) -> int:
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        return con.execute(COUNT_SQL).fetchone()[0]


def _replace_plain_file(source: Path, published: Path) -> None:
    """The earlier scheme, kept here as a control: a finished file renamed over the published path."""
    tmp = published.with_name(".incoming.duckdb")
    shutil.copyfile(source, tmp)
    os.replace(tmp, published)


def _connections_until_new_build(published: Path, publish_new, expected_new: int, window: float = 3.0):
    """How many *new* connections in this process, opened one after another from the moment a publish
    returns, it takes until one sees the new build, and the seconds that took (for the log only: the
    machine's load decides it). ``(None, inf)`` when no connection saw it within ``window`` seconds.

    A connection to the old build is held open the whole time, as a BI server does while a long query
    runs.
    """
    held = duckdb.connect(str(published), read_only=True)
    try:
        held.execute(COUNT_SQL).fetchone()
        publish_new()
        published_at = time.monotonic()
        attempts = 0
        while time.monotonic() - published_at < window:
            attempts += 1
            with contextlib.closing(duckdb.connect(str(published), read_only=True)) as fresh:
                if fresh.execute(COUNT_SQL).fetchone()[0] == expected_new:
                    return attempts, time.monotonic() - published_at
            time.sleep(0.05)
        return None, float("inf")
    finally:
        held.close()


def test_a_process_holding_a_connection_sees_the_next_build(builds, tmp_path):
    old, new = builds
    assert _count(old) != _count(new)
    # control: renaming a plain file over the path leaves this process on the old build
    plain = tmp_path / "plain" / "segfit.duckdb"
    plain.parent.mkdir()
    shutil.copyfile(old, plain)
    before, before_s = _connections_until_new_build(plain, lambda: _replace_plain_file(new, plain), _count(new))
    assert before is None, "the control should reproduce DuckDB's per-process instance cache"
    # segfit's publish: a link to a new file, so the next connection opens the new build
    published = tmp_path / "linked" / "segfit.duckdb"
    published.parent.mkdir()
    publish_copy(old, published)
    after, after_s = _connections_until_new_build(published, lambda: publish_copy(new, published), _count(new))
    print(f"staleness after publish with a held connection: plain-file replace={before_s}s, segfit={after_s:.3f}s")
    # not a timing: the very first connection opened after the publish returns must see the new build
    assert after == 1


def test_sqlalchemy_with_nullpool_is_fresh_across_a_rebuild(builds, tmp_path):
    old, new = builds
    published = tmp_path / "segfit.duckdb"
    publish_copy(old, published)
    url = serving.sqlalchemy_url(published)
    fresh = sqlalchemy.create_engine(url, poolclass=NullPool)
    pooled = sqlalchemy.create_engine(url)  # the default pool: the control
    try:
        for engine in (fresh, pooled):
            with engine.connect() as con:
                assert con.execute(sqlalchemy.text(COUNT_SQL)).scalar() == _count(old)
        publish_copy(new, published)
        with fresh.connect() as con:
            assert con.execute(sqlalchemy.text(COUNT_SQL)).scalar() == _count(new)
        with pooled.connect() as con:
            assert con.execute(sqlalchemy.text(COUNT_SQL)).scalar() == _count(old), \
                "a pooled connection keeps its build (the README says so)"
        pooled.dispose()
        with pooled.connect() as con:
            assert con.execute(sqlalchemy.text(COUNT_SQL)).scalar() == _count(new)
    finally:
        fresh.dispose()
        pooled.dispose()


def test_the_hardened_url_blocks_server_files_but_serves_the_marts(builds, tmp_path):
    published = tmp_path / "segfit.duckdb"
    publish_copy(builds[0], published)
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t")
    engine = sqlalchemy.create_engine(serving.sqlalchemy_url(published), poolclass=NullPool)
    try:
        with engine.connect() as con:
            assert con.execute(sqlalchemy.text(COUNT_SQL)).scalar() > 0
        for attack in (f"select content from read_text('{secret}')",
                       f"copy (select 1) to '{tmp_path / 'out.csv'}'",
                       "set enable_external_access = true"):
            with engine.connect() as con, pytest.raises(sqlalchemy.exc.DBAPIError):
                con.execute(sqlalchemy.text(attack)).fetchall()
    finally:
        engine.dispose()
    assert not (tmp_path / "out.csv").exists()


# --- the README's recipes and segfit's own hints, run as written ----------------------------------------

def _readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"### {title}")
    end = text.find("\n## ", start)
    return text[start:end if end != -1 else None]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


@pytest.fixture()
def repo_like(builds, tmp_path) -> Path:
    """A folder with ``.venv`` and ``warehouse/segfit.duckdb`` where the README expects them."""
    root = tmp_path / "repo"
    (root / "warehouse").mkdir(parents=True)
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent)
    publish_copy(builds[0], root / "warehouse" / "segfit.duckdb")
    return root


def test_every_readme_connection_example_runs(repo_like, builds):
    section = _readme_section("Connect your BI tool")
    shell = [line for block in _blocks(section, "sh") for line in block.splitlines() if line.strip()]
    python = _blocks(section, "python")
    assert len(shell) >= 2 and len(python) >= 1, "the section's examples were not found"
    for command in shell:
        done = subprocess.run(["bash", "-c", command], cwd=repo_like, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        assert "segment" in done.stdout or "customer" in done.stdout, done.stdout
    for code in python:
        done = subprocess.run([str(repo_like / ".venv" / "bin" / "python"), "-c", code], cwd=repo_like,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{code}\n{done.stderr}"
        assert int(done.stdout.strip()) == _count(builds[0])


def test_the_hints_segfit_prints_run(repo_like):
    published = repo_like / "warehouse" / "segfit.duckdb"
    hint = serving.how_to_query(published).splitlines()
    commands = [line.strip() for line in hint if line.strip().startswith(str(Path(sys.executable).parent))]
    assert len(commands) == 2, hint
    for command in commands:
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        assert "customer" in done.stdout or "segment" in done.stdout


def test_the_cli_opens_a_file_segfit_built(builds):
    """The storage-compatibility setting is what lets the PyPI DuckDB CLI (1.5.x) open segfit's files."""
    cli = Path(sys.executable).with_name("duckdb")
    done = subprocess.run([str(cli), "-readonly", "-csv", str(builds[0]), COUNT_SQL], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().splitlines()[-1]) == _count(builds[0])
