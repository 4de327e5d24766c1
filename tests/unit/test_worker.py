"""python_analysis.worker: the report's helper process (a real spawned process). A call's result comes back
equal to the same call in this process; a failure in the helper, or a helper that dies, is a one-line
SegfitError naming the step, never a hang; leaving the block (an error, Ctrl-C) stops a busy helper. The
functions sent are the standard library's, so the helper needs nothing from the tests. About 5 s."""

from __future__ import annotations

import math
import operator
import os
import time

import numpy as np
import pytest

from python_analysis import worker
from python_analysis.errors import SegfitError

TIMEOUT = 60  # a wait that does not end by itself fails the test instead of hanging the suite


def test_a_call_in_the_helper_returns_what_it_returns_here():
    values = np.random.default_rng(3).normal(size=(200, 7))
    with worker.side_process(True) as runner:
        assert runner.parallel and runner.pid != os.getpid()
        first = runner.submit("a sum", np.sum, values, axis=0)
        second = runner.submit("a square root", math.sqrt, 2.0)
        assert runner.result(second) == math.sqrt(2.0)  # results may be collected in any order
        np.testing.assert_array_equal(runner.result(first), np.sum(values, axis=0))
    with worker.side_process(False) as serial:
        assert not serial.parallel
        assert serial.result(serial.submit("a square root", math.sqrt, 2.0)) == math.sqrt(2.0)


def test_an_exception_in_the_helper_is_a_one_line_error_naming_the_step():
    with worker.side_process(True) as runner:
        failing = runner.submit("the within-segment tests", operator.truediv, 1, 0)
        with pytest.raises(SegfitError) as raised:
            runner.result(failing)
        # the helper survives a failed call and runs the next one
        assert runner.result(runner.submit("a square root", math.sqrt, 4.0)) == 2.0
    message = str(raised.value)
    assert "\n" not in message
    assert "the within-segment tests failed in the report's helper process" in message
    assert "ZeroDivisionError" in message


def test_a_helper_that_dies_is_reported_with_its_exit_code_not_awaited_forever():
    started = time.monotonic()
    with worker.side_process(True) as runner:
        pid = runner.pid
        dying = runner.submit("the grouped assessment", os._exit, 7)  # the helper exits without an answer
        with pytest.raises(SegfitError, match=r"stopped \(exit code 7\) before it finished the grouped assessment"):
            runner.result(dying)
    assert time.monotonic() - started < TIMEOUT
    assert not _alive(pid)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SegfitError])
def test_leaving_the_block_stops_a_busy_helper(interrupt):
    """Ctrl-C (KeyboardInterrupt), the CLI's SIGTERM exception or any error in the caller: the helper, busy with
    a long call, is terminated when the block is left, and the exception is the caller's."""
    started = time.monotonic()
    with pytest.raises(interrupt), worker.side_process(True) as runner:
        pid = runner.pid
        runner.submit("a long call", time.sleep, 10 * TIMEOUT)
        time.sleep(0.5)
        raise interrupt("stop")
    assert time.monotonic() - started < TIMEOUT
    assert not _alive(pid)


def test_the_environment_switch(monkeypatch):
    monkeypatch.setenv(worker.HELPER_ENV, "0")
    assert worker.helper_enabled() is False
    monkeypatch.setenv(worker.HELPER_ENV, "yes")
    with pytest.raises(SegfitError, match="SEGFIT_REPORT_HELPER must be 0 or 1"):
        worker.helper_enabled()
    monkeypatch.setenv(worker.HELPER_ENV, "1")
    assert worker.helper_enabled() is (len(os.sched_getaffinity(0)) >= 2)


def _alive(pid: int) -> bool:
    """Is ``pid`` a running (not zombie) process?"""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_after_close_an_outcome_already_received_is_returned_and_a_missing_one_is_an_error():
    """The report collects the warehouse copy's outcome after it stopped the helper (steps.report_from): an
    outcome received before close() is still returned; one never received is a one-line error, not a hang on
    the closed queue."""
    started = time.monotonic()
    with worker.side_process(True) as runner:
        copied = runner.submit("the warehouse copy", math.sqrt, 9.0)
        busy = runner.submit("a long call", time.sleep, 600)
        last = runner.submit("a square root", math.sqrt, 4.0)
        runner.close()  # the helper is still in the long call: 'last' never ran
        with pytest.raises(SegfitError, match="stopped before it finished a square root"):
            runner.result(last)
        del busy
    assert time.monotonic() - started < TIMEOUT
    with worker.side_process(True) as runner:
        copied = runner.submit("the warehouse copy", math.sqrt, 9.0)
        assert runner.result(runner.submit("a square root", math.sqrt, 4.0)) == 2.0  # receives the copy's first
        runner.close()
        assert runner.result(copied) == 3.0
