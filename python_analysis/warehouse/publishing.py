"""Publishing: how a finished build, and the report written from it, reach readers all at once.

The published warehouse path (``warehouse/segfit.duckdb``) is a symbolic link to one build's own file,
``warehouse/builds/<id>/segfit.duckdb``. A build writes only inside its own directory; publishing is one
atomic ``rename`` of a new link over the old one. Because every build is a different file, DuckDB's
per-process database cache (keyed on the resolved path) cannot hand a long-lived process the replaced
build: its next new connection opens the new file. A reader that still has the old file open keeps a
complete old snapshot until it closes it. The file keeps its name (``segfit.duckdb``) because DuckDB
names the catalog after the file, and saved BI datasets refer to ``segfit.marts``.

Ownership is proved with locks, not process ids (which collide across containers sharing a volume):
a build holds an exclusive ``flock`` on ``<build dir>/.lock`` while it runs, and a report holds a shared
one on the build it reads. A build directory is removed only when its lock can be taken, that is, when
no live process owns or reads it: unpublished leftovers (a crash, a kill) at once, published builds
beyond the newest ``SEGFIT_KEEP_BUILDS`` (default 3).

The report folder (``--out``) is published the same way: a link to ``<parent>/builds/<name>-<id>/``, so
``segfit run`` swaps the warehouse and the report together, or neither.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import duckdb

from python_analysis.errors import SegfitError

log = logging.getLogger(__name__)

BUILDS = "builds"
LOCK = ".lock"
PUBLISHED_MARK = ".published"
REQUIRED_RELATION = ("marts", "customer_segment_fit")


def keep_builds() -> int:
    raw = os.environ.get("SEGFIT_KEEP_BUILDS", "3")
    if not raw.isdigit() or int(raw) < 1:
        raise SegfitError(f"SEGFIT_KEEP_BUILDS must be a whole number >= 1, got {raw!r}")
    return int(raw)


@dataclass
class Slot:
    """One build's private directory, exclusively locked by this process until it is published or dropped."""

    directory: Path
    target: Path  # the file (or folder) readers will see through the published link
    _lock: IO[bytes] | None = field(default=None, repr=False)
    published: bool = False

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor drops the flock
            self._lock = None

    def discard(self) -> None:
        """Remove everything this build wrote (on failure, interrupt or abort); a published build stays."""
        if not self.published:
            shutil.rmtree(self.directory, ignore_errors=True)
        self.release()


def builds_dir(published: Path) -> Path:
    return published.parent / BUILDS


def _build_id(prefix: str) -> str:
    # time first so a listing sorts by age; random so ids never collide across hosts or PID namespaces
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{prefix}-{stamp}-{secrets.token_hex(4)}"


def new_slot(published: Path, *, is_dir: bool = False) -> Slot:
    """Create and lock a fresh build directory for ``published`` (a warehouse file or a report folder)."""
    root = builds_dir(published)
    root.mkdir(parents=True, exist_ok=True)
    directory = root / _build_id(published.name)
    directory.mkdir()
    handle = (directory / LOCK).open("wb")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    target = directory / ("report" if is_dir else published.name)
    if is_dir:
        target.mkdir()
    return Slot(directory=directory, target=target, _lock=handle)


@contextlib.contextmanager
def reading(snapshot: Path) -> Iterator[None]:
    """Hold a shared lock on the build a reader uses, so retention never removes it mid-read."""
    lock = snapshot.parent / LOCK
    if not lock.exists():
        yield
        return
    with lock.open("rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        yield


def current_target(published: Path) -> Path | None:
    """The file readers get at ``published`` now (the link's target, or a pre-link plain file)."""
    if published.is_symlink():
        return Path(os.path.realpath(published))
    return published if published.exists() else None


def is_segfit_link(published: Path) -> bool:
    if not published.is_symlink():
        return False
    target = Path(os.path.realpath(published))
    return target.parent.parent == builds_dir(published).resolve()


def has_marts(database: Path) -> bool:
    """True when ``database`` is a DuckDB file holding segfit's marts (opened read-only)."""
    try:
        with contextlib.closing(duckdb.connect(str(database), read_only=True)) as con:
            found = con.execute(
                "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
                list(REQUIRED_RELATION),
            ).fetchone()[0]
    except (duckdb.Error, OSError):
        return False
    return bool(found)


def verify_candidate(database: Path) -> None:
    """Refuse to publish a build file that is missing, not DuckDB, or lacks the marts."""
    if not database.is_file():
        raise SegfitError(f"build file {database} is missing; not publishing")
    with contextlib.closing(duckdb.connect(str(database))) as con:
        con.execute("checkpoint")
    if database.with_name(database.name + ".wal").exists():
        raise SegfitError(f"build file {database} still has a write-ahead log after checkpoint; not publishing")
    if not has_marts(database):
        raise SegfitError(f"build file {database} does not hold segfit's marts; not publishing")


def _swap_link(published: Path, slot: Slot) -> Path | None:
    """Point ``published`` at ``slot.target`` in one rename; return the previous target."""
    previous = current_target(published)
    link = published.with_name(f".{published.name}.link-{secrets.token_hex(4)}")
    link.symlink_to(os.path.relpath(slot.target, published.parent))
    try:
        if published.is_dir() and not published.is_symlink():
            # a pre-link report folder: a folder cannot be renamed over, so move it aside first
            aside = published.with_name(f".{published.name}.old-{secrets.token_hex(4)}")
            os.rename(published, aside)
            os.rename(link, published)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(link, published)
    finally:
        link.unlink(missing_ok=True)
    slot.published = True
    (slot.directory / PUBLISHED_MARK).touch()
    _fsync_dir(published.parent)
    return previous


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _publish_lock(published: Path) -> Iterator[None]:
    """Publishes of one path are serialised (a compare-and-swap needs it); readers never take this."""
    root = builds_dir(published)
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{published.name}.publish.lock").open("wb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def publish(published: Path, warehouse_slot: Slot, report: tuple[Path, Slot] | None = None,
            expect_current: Path | None = None) -> None:
    """Swap the warehouse (and the report folder, when given) in; both or neither.

    ``expect_current``: publish only if readers still get this file (a report's write-back must land in
    the snapshot it read). Raises ``SegfitError`` and changes nothing otherwise.
    """
    verify_candidate(warehouse_slot.target)
    with _publish_lock(published):
        if expect_current is not None and current_target(published) != expect_current:
            raise SegfitError(
                f"{published} was republished while this step ran; its results belong to the build it read, "
                "so nothing was published. Run it again on the new build."
            )
        stale_wal = published.with_name(published.name + ".wal")
        previous = _swap_link(published, warehouse_slot)
        if report is not None:
            try:
                _swap_link(*report)
            except OSError:
                if previous is not None:
                    _restore(published, previous)
                    warehouse_slot.published = False
                raise
        if stale_wal.exists() and not stale_wal.is_symlink():
            # A WAL beside a pre-link plain file, left by a crashed writable session on *that* file. The
            # file is gone from the path now; DuckDB reads a WAL beside the resolved file, so this one only
            # misleads. Remove it.
            log.warning("removed %s, a write-ahead log left by a crashed session on the previous file", stale_wal)
            stale_wal.unlink()
    _verify_published(published, warehouse_slot.target)
    warehouse_slot.release()
    if report is not None:
        report[1].release()
        sweep(report[0])
    sweep(published)


def _restore(published: Path, previous: Path) -> None:
    link = published.with_name(f".{published.name}.link-{secrets.token_hex(4)}")
    link.symlink_to(os.path.relpath(previous, published.parent))
    os.replace(link, published)


def _verify_published(published: Path, expected: Path) -> None:
    if current_target(published) != expected.resolve():
        raise SegfitError(f"{published} does not point at the new build {expected} after publishing")
    try:
        with contextlib.closing(duckdb.connect(str(published), read_only=True)) as con:
            con.execute("select count(*) from marts.customer_segment_fit").fetchone()
    except duckdb.Error as exc:
        raise SegfitError(f"the published warehouse {published} does not open read-only: {exc}") from exc


def sweep(published: Path) -> list[Path]:
    """Remove build directories of ``published`` that no live process owns or reads.

    Kept: the current target, the newest ``SEGFIT_KEEP_BUILDS`` published builds, and every directory
    whose lock is held (a running build, a report reading it).
    """
    root = builds_dir(published)
    if not root.is_dir():
        return []
    prefix = f"{published.name}-"
    current = current_target(published)
    mine = sorted((d for d in root.iterdir() if d.is_dir() and d.name.startswith(prefix)), reverse=True)
    published_builds = [d for d in mine if (d / PUBLISHED_MARK).exists()]
    keep = {d for d in published_builds[: keep_builds()]}
    if current is not None:
        keep.add(current.parent)
    removed = []
    for directory in mine:
        if directory in keep or not _lock_is_free(directory):
            continue
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    for link in published.parent.glob(f".{published.name}.link-*"):
        link.unlink(missing_ok=True)  # a link made by a publish that died before its rename
    return removed


def _lock_is_free(directory: Path) -> bool:
    lock = directory / LOCK
    try:
        with lock.open("rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except FileNotFoundError:
        # a directory whose creation was interrupted before its lock existed, or one being created now
        return time.time() - directory.stat().st_mtime > 60
    except BlockingIOError:
        return False
    return True


# --- up-front checks: one clear line before any work is done ------------------------------------------


def _writable_folder(folder: Path, what: str) -> None:
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise SegfitError(f"{what}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SegfitError(f"{what}: the folder {probe} is not writable")


def _resolved(path: Path, what: str) -> Path:
    try:
        return path.resolve(strict=False)
    except (RuntimeError, OSError) as exc:  # a symlink loop
        raise SegfitError(f"{what} {path} cannot be resolved ({exc})") from exc


def check_warehouse_target(published: Path, inputs: tuple[Path, ...] = (), force: bool = False) -> None:
    """Refuse a warehouse path that is a folder, unwritable, a loop, an input, or someone else's file."""
    resolved = _resolved(published, "warehouse path")
    if published.is_dir() and not published.is_symlink() or resolved.is_dir():
        raise SegfitError(f"warehouse path {published} is a folder; give a file path such as {published / 'segfit.duckdb'}")
    _writable_folder(published.parent, "warehouse path")
    if not (published.exists() or published.is_symlink()) or is_segfit_link(published) or force:
        return
    if any(resolved == _resolved(path, "input path") for path in inputs):
        raise SegfitError(f"warehouse path {published} is one of the input files; choose another path "
                          "(or pass --force to replace it)")
    if not has_marts(published):
        raise SegfitError(f"{published} exists and is not a segfit warehouse; refusing to replace it "
                          "(choose another --warehouse, or pass --force)")


def check_out_target(out: Path, force: bool = False) -> None:
    """Refuse a report folder that is a file, unwritable, or a non-empty folder that is not a segfit report."""
    _resolved(out, "--out")
    if out.exists() and not out.is_dir():
        raise SegfitError(f"--out {out} is a file; give a folder")
    _writable_folder(out.parent, "--out")
    if out.is_symlink() or not out.exists() or force:
        return
    if any(out.iterdir()) and not (out / "metrics.json").is_file():
        raise SegfitError(f"--out {out} is a folder that is not a segfit report; refusing to replace it "
                          "(choose another --out, or pass --force)")


def check_readable_warehouse(published: Path) -> Path:
    """The file a reading step (check, report) will use; one clear line when it cannot."""
    resolved = _resolved(published, "warehouse path")
    if not resolved.exists():
        raise SegfitError(f"no warehouse at {published}: run `segfit build` first")
    if resolved.is_dir():
        raise SegfitError(f"warehouse path {published} is a folder, not a DuckDB file")
    try:
        with contextlib.closing(duckdb.connect(str(resolved), read_only=True)) as con:
            con.execute("select 1").fetchone()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SegfitError(f"{published} is not a readable DuckDB file ({first})") from exc
    if not has_marts(resolved):
        raise SegfitError(f"{published} holds no segfit marts: run `segfit build --warehouse {published}` first")
    return resolved
