"""The build gate (python_analysis/build_gate.py): an appending build's copy of the published warehouse is
made while dbt starts, and dbt's first connection waits for it. Real files and threads; dbt's side is the
plugin's wait, run here in a second process as dbt would."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from python_analysis import build_gate, pipeline
from python_analysis.errors import SegfitError


def test_the_gate_opens_once_the_copy_is_whole(tmp_path):
    source = tmp_path / "published.duckdb"
    source.write_bytes(os.urandom(1 << 20))
    target = tmp_path / "build" / "segfit.duckdb"
    target.parent.mkdir()
    with pipeline.copying_in_background(source, target) as gate:
        build_gate.wait_for_gate(gate, os.getppid())
        assert target.read_bytes() == source.read_bytes()
        assert gate.read_text() == build_gate.READY
    assert not gate.exists()


def test_a_failed_copy_stops_the_waiting_side_and_raises(tmp_path):
    target = tmp_path / "build" / "segfit.duckdb"
    target.parent.mkdir()
    with pytest.raises(SegfitError, match="copying the published warehouse .* failed"):
        with pipeline.copying_in_background(tmp_path / "missing.duckdb", target) as gate:
            with pytest.raises(build_gate.BuildFileNotWritten, match="the build file was not written: copying"):
                build_gate.wait_for_gate(gate, os.getppid())


def test_the_waiting_side_holds_until_the_gate_opens(tmp_path):
    gate = tmp_path / ".segfit-build-file"
    opener = threading.Timer(0.3, build_gate.open_gate, args=(gate,))
    started = time.monotonic()
    opener.start()
    build_gate.wait_for_gate(gate, os.getppid())
    assert time.monotonic() - started >= 0.25


def test_dbt_does_not_wait_forever_for_a_segfit_that_died(tmp_path):
    # the plugin remembers its parent (the CLI); a process whose parent changed stops waiting
    gate = tmp_path / ".segfit-build-file"
    script = ("import sys; from pathlib import Path; from python_analysis import build_gate\n"
              "try:\n    build_gate.wait_for_gate(Path(sys.argv[1]), parent=-1)\n"
              "except build_gate.BuildFileNotWritten as error:\n    print(error)\n")
    result = subprocess.run([sys.executable, "-c", script, str(gate)], capture_output=True, text=True, timeout=60,
                            check=True)
    assert "has exited" in result.stdout
