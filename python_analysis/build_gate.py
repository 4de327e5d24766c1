"""The gate that holds dbt's first connection to the build file until segfit has written it.

An appending build starts from a copy of the published warehouse: gigabytes at scale (3.7 GiB at 5M
customers / 100M stored transactions, 2-6 s). The segfit CLI copies it while dbt starts and parses (about
3 s), not before. dbt opens the file only when it first needs a connection, after parsing; dbt-duckdb calls
``update_connection_config`` on its plugins just before ``duckdb.connect``, and the plugin waits there for
the CLI's word in the file named by ``SEGFIT_BUILD_GATE``: ``ready``, or why the copy failed (dbt then
stops with that message and nothing is published). Without ``SEGFIT_BUILD_GATE`` (plain dbt, every build
that does not copy) it does nothing. This module is the protocol, for both sides.

The plugin (``build_gate_plugin``) is enabled in profiles/profiles.yml for the CLI's target (``prod``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENVIRONMENT_VARIABLE = "SEGFIT_BUILD_GATE"
READY = "ready"
POLL_SECONDS = 0.02


class BuildFileNotWritten(RuntimeError):
    """The CLI could not write the build file dbt was about to open."""


def open_gate(gate: Path, word: str = READY) -> None:
    """Say ``word`` through ``gate``, whole: dbt sees no file or the full word (a renamed temporary file)."""
    partial = gate.with_name(f".{gate.name}.tmp")
    partial.write_text(word, encoding="utf-8")
    os.replace(partial, gate)


def wait_for_gate(gate: Path, parent: int) -> None:
    """Return once ``gate`` says ready; raise if it says anything else, or if ``parent`` (the CLI) is gone."""
    while not gate.exists():
        if os.getppid() != parent:
            raise BuildFileNotWritten("segfit: the segfit process that was writing the build file has exited")
        time.sleep(POLL_SECONDS)
    word = gate.read_text(encoding="utf-8")
    if word != READY:
        raise BuildFileNotWritten(f"segfit: the build file was not written: {word}")
