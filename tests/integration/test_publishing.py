"""Publishing never gives readers a broken, empty or mixed warehouse, and never destroys a file not its own.

The numbered cases are issue #8's: each reproduces the fault with real files, real DuckDB and real
processes, and checks what readers see afterwards.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psutil
import pytest

from python_analysis import cli, pipeline, steps, warehouse
from python_analysis.errors import SegfitError
from python_analysis.warehouse import publishing
from tests.builds import publish_copy
from tests.conftest import SHARED_EXTRACT


def _segfit(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).with_name("segfit")), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _anomaly_count(path: Path) -> int:
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        return con.execute("select count(*) from marts.classification_anomalies").fetchone()[0]


@pytest.fixture(scope="module")
def other_build(build_warehouse) -> Path:
    """A second demo build whose anomaly count differs from the default one."""
    return build_warehouse(pipeline.BuildOptions(threshold=0.10))


@pytest.fixture()
def served(demo_warehouse, tmp_path) -> Path:
    published = tmp_path / "wh" / "segfit.duckdb"
    published.parent.mkdir()
    publish_copy(demo_warehouse, published)
    return published


def _unpublished(published: Path) -> list[Path]:
    root = publishing.builds_dir(published)
    return [d for d in root.iterdir() if d.is_dir() and not (d / publishing.PUBLISHED_MARK).exists()]


# --- 5: unique build names, only dead leftovers removed, no empty or missing publish -----------------

def test_build_directories_are_unique_even_in_one_process_and_second(tmp_path):
    published = tmp_path / "segfit.duckdb"
    slots = [publishing.new_slot(published) for _ in range(20)]
    assert len({s.directory for s in slots}) == 20
    for slot in slots:
        slot.discard()


def test_a_sweep_in_another_process_never_removes_a_running_build(tmp_path):
    published = tmp_path / "segfit.duckdb"
    running = publishing.new_slot(published)  # this process holds its lock, like a build in another container
    running.target.write_bytes(b"being written")
    sweep = [sys.executable, "-c",
             "import sys; from pathlib import Path; from python_analysis.warehouse import publishing; "
             "print(len(publishing.sweep(Path(sys.argv[1]))))", str(published)]
    assert subprocess.run(sweep, capture_output=True, text=True, check=True).stdout.strip() == "0"
    assert running.target.read_bytes() == b"being written"
    running.release()  # the owner is gone (dead, or finished without publishing)
    assert subprocess.run(sweep, capture_output=True, text=True, check=True).stdout.strip() == "1"
    assert not running.directory.exists()


def test_a_new_warehouse_elsewhere_starts_from_the_last_builds_saved_parse(tmp_path, monkeypatch):
    """dbt opens every build by its file name from the build's own directory, so its partial-parse key (which
    includes the profile's DuckDB path) is the same wherever a warehouse lives: the first build of a new
    warehouse starts from the checkout's last saved parse. A customers file under another name (a daily
    export named by date) re-parses nothing: dbt_project.yml, the models and the sources' YAML read the
    CLI's parse stand-in, not the path. And a build from your own file loads no demo seeds."""
    cache = tmp_path / "cache" / "partial_parse.msgpack"
    monkeypatch.setattr(warehouse.dbt_runner, "saved_parse_cache", lambda: cache)
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)

    def dbt_log(published: Path) -> str:
        return (published.resolve().parent / "dbt_target" / "logs" / "dbt.log").read_text()

    first, second = tmp_path / "one" / "segfit.duckdb", tmp_path / "two" / "deeper" / "segfit.duckdb"
    built = []
    for published, name in ((first, "customers_2026-11-30.csv"), (second, "customers_2026-12-01.csv")):
        published.parent.mkdir(parents=True)
        customers = tmp_path / name
        shutil.copyfile(SHARED_EXTRACT, customers)
        pipeline.build(pipeline.BuildOptions(customers=customers), published)
        built.append(dbt_log(published))
    assert "Unable to do partial parsing because saved manifest not found" in built[0]
    assert cache.is_file()  # kept, whole, for the next new warehouse
    assert "Unable to do partial parsing" not in built[1] and "Partial parsing enabled" in built[1]
    reparsed = {line.split("updated file: ", 1)[1].strip() for line in built[1].splitlines()
                if "Partial parsing: updated file: " in line}
    # as for a new day's transactions file (test_incremental): the sources name the CLI's link to the file
    assert not reparsed, reparsed
    assert "0 files deleted, 0 files added, 0 files changed" in built[1]
    for published in (first, second):
        with contextlib.closing(duckdb.connect(str(published), read_only=True)) as con:
            schemas = {r[0] for r in con.execute("select distinct table_schema from information_schema.tables")
                       .fetchall()}
        assert "raw" not in schemas and "marts" in schemas  # no demo seeds beside your marts
    assert _anomaly_count(second) == _anomaly_count(first) > 0


def test_publish_refuses_a_missing_or_empty_candidate(served):
    before = publishing.current_target(served)
    missing = publishing.new_slot(served)
    with pytest.raises(SegfitError, match="missing"):
        publishing.publish(served, missing)
    empty = publishing.new_slot(served)
    duckdb.connect(str(empty.target)).close()  # a valid DuckDB file with nothing in it
    with pytest.raises(SegfitError, match="does not hold segfit's marts"):
        publishing.publish(served, empty)
    assert publishing.current_target(served) == before
    assert _anomaly_count(served) > 0


def test_old_builds_are_kept_to_the_retention_limit(served, demo_warehouse, monkeypatch):
    monkeypatch.setenv("SEGFIT_KEEP_BUILDS", "2")
    for _ in range(3):
        publish_copy(demo_warehouse, served)
    kept = [d for d in publishing.builds_dir(served).iterdir() if d.is_dir()]
    assert len(kept) == 2
    assert publishing.current_target(served).parent in kept


# --- 6: --warehouse never replaces a file that is not segfit's --------------------------------------

def test_warehouse_refuses_to_replace_a_foreign_file_or_an_input(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert cli.main(["build", "--warehouse", str(notes)]) == cli.EXIT_USER_ERROR
    assert "not a segfit warehouse" in capsys.readouterr().err
    assert notes.read_text() == "my notes\n"

    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,profitability_segment,retention_probability\nc1,Gold,0.5\n")
    assert cli.main(["build", "--customers", str(customers), "--warehouse", str(customers)]) == cli.EXIT_USER_ERROR
    assert "is one of the input files" in capsys.readouterr().err
    assert customers.read_text().startswith("customer_id,")
    assert not (tmp_path / "builds").exists()


def test_force_replaces_a_foreign_file(tmp_path):
    notes = tmp_path / "notes.duckdb"
    notes.write_text("not a database\n")
    assert cli.main(["build", "--warehouse", str(notes), "--force"]) == 0
    assert _anomaly_count(notes) > 0


# --- 7: a leftover WAL from a crashed writable session -----------------------------------------------

def test_a_leftover_wal_does_not_break_the_published_file(demo_warehouse, other_build, tmp_path):
    published = tmp_path / "segfit.duckdb"
    shutil.copyfile(demo_warehouse, published)  # a plain file, as earlier segfit versions published
    crash = ("import duckdb, os, sys; con = duckdb.connect(sys.argv[1]); "
             "con.execute('create table main.scratch as select 1 as x'); os._exit(0)")
    subprocess.run([sys.executable, "-c", crash, str(published)], check=True)
    assert published.with_name(published.name + ".wal").exists()
    publish_copy(other_build, published)
    assert _anomaly_count(published) == _anomaly_count(other_build)
    assert not published.with_name(published.name + ".wal").exists()
    # a crash through the link leaves its WAL beside the build it wrote; the next publish is unaffected
    subprocess.run([sys.executable, "-c", crash, str(published)], check=True)
    publish_copy(demo_warehouse, published)
    assert _anomaly_count(published) == _anomaly_count(demo_warehouse)


# --- 8: a report racing a build does not write its tables into the other build -----------------------

def test_report_write_back_aborts_when_another_build_was_published(served, other_build, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_report_from = steps.report_from
    raced = {}

    def report_then_a_build_lands(*args, **kwargs):
        result = real_report_from(*args, **kwargs)
        raced["target"] = publish_copy(other_build, served)  # a `segfit build` finishing meanwhile
        return result

    monkeypatch.setattr(steps, "report_from", report_then_a_build_lands)
    with pytest.raises(SegfitError, match="republished"):
        steps.report_published(served, out)
    assert publishing.current_target(served) == raced["target"]
    with contextlib.closing(duckdb.connect(str(served), read_only=True)) as con:
        schemas = {r[0] for r in con.execute("select schema_name from information_schema.schemata").fetchall()}
    assert "analysis" not in schemas
    assert not out.exists()
    assert not _unpublished(served)


def test_report_writes_back_into_the_build_it_read(served, tmp_path):
    out = tmp_path / "out"
    assert steps.report_published(served, out) == 0
    with contextlib.closing(duckdb.connect(str(served), read_only=True)) as con:
        clusters = con.execute("select count(*) from analysis.anomaly_clusters").fetchone()[0]
        anomalies = con.execute("select count(*) from marts.classification_anomalies").fetchone()[0]
    assert clusters == anomalies > 0
    assert (out / "report.html").is_file() and out.is_symlink()


# --- 9: the warehouse and the report are published together, or neither ----------------------------

def test_run_publishes_nothing_when_the_report_cannot_be_written(served, tmp_path, monkeypatch):
    out = tmp_path / "out"
    before = publishing.current_target(served)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(out))

    monkeypatch.setattr(steps.report, "write_report", disk_full)
    with pytest.raises(OSError):
        steps.run_all(pipeline.BuildOptions(), served, out)
    assert publishing.current_target(served) == before
    assert not out.exists()
    assert not _unpublished(served)
    assert not [d for d in publishing.builds_dir(out).iterdir() if d.is_dir()]


# --- 10: SIGTERM and Ctrl-C stop dbt, clean up and exit with one line --------------------------------

@pytest.mark.parametrize(("signum", "code", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                    (signal.SIGINT, 130, "interrupted")])
def test_a_signal_stops_the_build_and_cleans_up(served, signum, code, word):
    before = publishing.current_target(served)
    # Ctrl-C reaches a foreground process whose SIGINT has its default action; a suite started in the
    # background by a non-interactive shell (`cmd &`) inherits SIGINT ignored, which segfit rightly keeps
    build = _segfit("build", "--warehouse", str(served), "--threshold", "0.05", preexec_fn=_default_sigint)
    deadline = time.time() + 180
    children: list[psutil.Process] = []
    while time.time() < deadline:
        children = psutil.Process(build.pid).children(recursive=True)
        files = [d / served.name for d in _unpublished(served)]
        if children and any(f.exists() and f.stat().st_size > 1_000_000 for f in files):
            break
        time.sleep(0.05)
    else:
        build.kill()
        pytest.fail("the build never started writing")
    build.send_signal(signum)
    _, err = build.communicate(timeout=120)
    assert build.returncode == code, err[-2000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"segfit: {word}")
    # segfit waits for its dbt child before it exits: none may outlive it, not even for a moment
    alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"dbt children still running after segfit exited: {alive}"
    assert not _unpublished(served)
    assert publishing.current_target(served) == before


# --- 11: a full disk during the report's copy leaves nothing behind ---------------------------------

def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes beyond the limit fail with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))


def test_report_on_a_full_disk_leaves_no_partial_copy(served, tmp_path):
    before = publishing.current_target(served)
    report = _segfit("report", "--warehouse", str(served), "--out", str(tmp_path / "out"),
                     preexec_fn=_limit_file_size)
    _, err = report.communicate(timeout=600)
    assert report.returncode == cli.EXIT_USER_ERROR, err[-2000:]
    assert "Traceback" not in err and "File too large" in err
    assert len(err.strip().splitlines()) == 1
    assert not _unpublished(served)
    assert publishing.current_target(served) == before


# --- 20: setup errors are found before any work, with one clear line ---------------------------------

def _one_line_error(argv: list[str], capsys, expected: str) -> None:
    assert cli.main(argv) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_setup_errors_are_one_line_each(tmp_path, capsys, served):
    folder = tmp_path / "a_folder"
    folder.mkdir()
    _one_line_error(["build", "--warehouse", str(folder)], capsys, "is a folder")
    loop = tmp_path / "loop.duckdb"
    loop.symlink_to(loop)
    _one_line_error(["build", "--warehouse", str(loop)], capsys, "cannot be resolved")
    a_file = tmp_path / "out.txt"
    a_file.write_text("x")
    _one_line_error(["report", "--warehouse", str(served), "--out", str(a_file)], capsys, "is a file")
    not_duckdb = tmp_path / "text.duckdb"
    not_duckdb.write_text("hello")
    for command in ("report", "check"):
        _one_line_error([command, "--warehouse", str(not_duckdb), "--out", str(tmp_path / "o")], capsys,
                        "is not a readable DuckDB file")
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    for command in ("report", "check"):
        _one_line_error([command, "--warehouse", str(empty), "--out", str(tmp_path / "o")], capsys,
                        "holds no segfit marts")
    _one_line_error(["report", "--warehouse", str(tmp_path / "nothing.duckdb")], capsys, "no warehouse at")


@pytest.fixture()
def read_only_folder(tmp_path):
    """A folder this process cannot write: by permissions, or (as root, who ignores them) a read-only mount."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"running as root and cannot mount a read-only folder: {mounted.stderr!r}")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_read_only_folders_are_refused_up_front(read_only_folder, served, capsys):
    _one_line_error(["build", "--warehouse", str(read_only_folder / "segfit.duckdb")], capsys, "not writable")
    _one_line_error(["report", "--warehouse", str(served), "--out", str(read_only_folder / "out")], capsys,
                    "not writable")
    assert not list(read_only_folder.iterdir())


def test_the_published_path_is_a_link_to_a_build_of_its_own(served):
    assert served.is_symlink()
    target = publishing.current_target(served)
    assert target.name == "segfit.duckdb" and target.parent.parent == publishing.builds_dir(served)
    with warehouse.read_only(served) as con:
        assert con.execute("select current_database()").fetchone()[0] == "segfit"


def test_a_warehouse_folder_with_quotes_and_semicolons_builds_twice(demo_warehouse, tmp_path):
    """The path reaches dbt as a file name and the history hook as an escaped SQL literal, never as SQL."""
    published = tmp_path / "O'Brien; drop table x --" / "segfit.duckdb"
    published.parent.mkdir()
    publish_copy(demo_warehouse, published)  # a first build to carry history from
    assert cli.main(["build", "--warehouse", str(published), "--threshold", "0.10"]) == 0
    with warehouse.read_only(published) as con:
        versions = con.execute("select count(*), count(distinct customer_id) "
                               "from snapshots.customer_segment_fit_history").fetchone()
        changes = con.execute("select count(*) from marts.customer_fit_changes").fetchone()[0]
    assert versions[0] > versions[1] and changes > 0, "the history was not carried over from the quoted path"
