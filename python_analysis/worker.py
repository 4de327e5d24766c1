"""A second process for independent parts of the report (issue #9: the report is mostly single-threaded).

``side_process(enabled)`` yields a runner with ``submit(fn, *args)`` and ``result(handle, what)``:

- enabled: one helper process started with the ``spawn`` method (a fresh interpreter: no fork after threads
  started), which runs the submitted calls in order, each under ``threadpool_limits(1)``, while the caller
  goes on with its own work. The arguments and results travel pickled, so the caller sends only what a call
  needs (the analysis sample, not the population). Every call is seeded by its arguments alone, so the
  results are those of the same call in the caller's process.
- disabled: the calls run in the caller's process when submitted (the serial path, unchanged).

Failures never hang and always name the step: an exception in a call is re-raised in the caller as a
``SegfitError`` naming it (with the helper's traceback in the log); a helper that dies (killed, out of
memory) is detected while waiting and reported with its exit code. Leaving the ``with`` block, normally or
by an exception (Ctrl-C's ``KeyboardInterrupt``, the CLI's SIGTERM exception), terminates the helper.

Why not ``concurrent.futures.ProcessPoolExecutor``: on Python 3.11 its ``shutdown`` waits for a running call
and it has no public way to terminate a busy worker (``terminate_workers`` arrived in 3.14), while a Ctrl-C or
SIGTERM here must stop the helper at once; the queue pair and the liveness poll below are what that needs.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from python_analysis.errors import SegfitError

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.2  # how often a wait checks that the helper is still alive
_STOP = None  # the task that ends the helper's loop


@dataclass(frozen=True)
class Handle:
    """A submitted call: its sequence number and, for the serial runner, its outcome."""

    number: int
    what: str
    value: Any = None


def _serve(tasks: Any, results: Any) -> None:
    """The helper's loop: run each task, send back ``(number, ok, value or traceback text)``."""
    # Ctrl-C at a terminal reaches the whole process group: the caller decides what an interrupt stops,
    # and terminates this process when it leaves its ``with`` block
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits

    while True:
        task = tasks.get()
        if task is _STOP:
            break
        number, fn, args, kwargs = task
        started = time.perf_counter()
        try:
            with threadpool_limits(limits=1):
                value = fn(*args, **kwargs)
            results.put((number, True, value, time.perf_counter() - started))
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller, named
            text = "".join(traceback.format_exception(exc))
            results.put((number, False, f"{type(exc).__name__}: {exc}\n{text}", time.perf_counter() - started))
    results.close()
    results.join_thread()


class SerialRunner:
    """Runs each call when it is submitted, in this process: the path for small data."""

    parallel = False

    def submit(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Handle:
        return Handle(0, what, fn(*args, **kwargs))

    def result(self, handle: Handle) -> Any:
        return handle.value

    def close(self) -> None:
        """Nothing to stop."""


class ProcessRunner:
    """One spawned helper process; calls run there in submission order (see the module docstring)."""

    parallel = True

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._tasks = context.Queue()
        self._results = context.Queue()
        self._process = context.Process(target=_serve, args=(self._tasks, self._results),
                                        name="segfit-report-helper", daemon=True)
        self._process.start()
        self._submitted = 0
        self._done: dict[int, tuple[bool, Any]] = {}
        self._seconds: dict[int, float] = {}
        self._closed = False

    def submit(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Handle:
        if self._closed:
            raise RuntimeError("the report's helper process was stopped")
        self._submitted += 1
        self._tasks.put((self._submitted, fn, args, kwargs))  # queued by a feeder thread: returns at once
        return Handle(self._submitted, what)

    def result(self, handle: Handle) -> Any:
        """The outcome of ``handle``'s call (waiting for it); after ``close()``, only an outcome already received."""
        waiting = time.perf_counter()
        while handle.number not in self._done:
            if self._closed:
                raise SegfitError(f"the report's helper process was stopped before it finished {handle.what}")
            try:
                number, ok, value, seconds = self._results.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                if not self._process.is_alive():
                    raise SegfitError(
                        f"the report's helper process stopped (exit code {self._process.exitcode}) before it "
                        f"finished {handle.what}; nothing was published") from None
                continue
            self._done[number] = (ok, value)
            self._seconds[number] = seconds
        ok, value = self._done.pop(handle.number)
        log.debug("%s: %.1f s in the helper process; waited %.1f s for it", handle.what,
                  self._seconds.pop(handle.number), time.perf_counter() - waiting)
        if not ok:
            log.debug("the report's helper process failed in %s:\n%s", handle.what, value)
            first = str(value).splitlines()[0] if value else "unknown error"
            raise SegfitError(f"{handle.what} failed in the report's helper process: {first}")
        return value

    def close(self) -> None:
        """Stop the helper (idle after the last result, or still busy when the caller failed or was stopped).
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5)
        if self._process.is_alive():  # pragma: no cover - terminate ignored
            self._process.kill()
            self._process.join(timeout=5)
        for q in (self._tasks, self._results):
            q.cancel_join_thread()  # never block the exit on data the helper will not read
            q.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid


Runner = SerialRunner | ProcessRunner


HELPER_ENV = "SEGFIT_REPORT_HELPER"  # "0": no helper process (everything in the caller); "1" (default): helper


def helper_enabled() -> bool:
    """Use a helper process: ``SEGFIT_REPORT_HELPER`` is not "0", and there is a second core to run on."""
    value = os.environ.get(HELPER_ENV, "1").strip()
    if value not in ("0", "1"):
        raise SegfitError(f"{HELPER_ENV} must be 0 or 1, got {value!r}")
    if value == "0":
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except AttributeError:  # pragma: no cover - not Linux
        return (os.cpu_count() or 1) >= 2


@contextmanager
def side_process(enabled: bool) -> Iterator[SerialRunner | ProcessRunner]:
    """A runner for independent report parts: a spawned helper process when ``enabled``, else the caller."""
    if not enabled:
        yield SerialRunner()
        return
    runner = ProcessRunner()
    log.debug("report helper process %s started", runner.pid)
    try:
        yield runner
    finally:
        runner.close()
