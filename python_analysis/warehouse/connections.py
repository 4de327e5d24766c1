"""Connections to a warehouse file: read-only and always closed; bounded in memory, spilling to a private directory."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb

from python_analysis.errors import SegfitError


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection that is always closed (so the file is released)."""
    if not path.is_file():
        raise SegfitError(f"no warehouse at {path}: run `segfit build` first")
    con = duckdb.connect(str(path), read_only=True)
    try:
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def bounded_read_only(path: Path, spill_prefix: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection with DuckDB's memory limit (``SEGFIT_DUCKDB_MEMORY_LIMIT``, default 1GB) that
    spills beyond it to a private temporary directory, removed afterwards; no progress bar."""
    memory_limit = os.environ.get("SEGFIT_DUCKDB_MEMORY_LIMIT", "1GB")
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", memory_limit, flags=re.IGNORECASE):
        raise SegfitError(f"SEGFIT_DUCKDB_MEMORY_LIMIT must look like 1GB or 512MB, got {memory_limit!r}")
    with read_only(path) as con, tempfile.TemporaryDirectory(prefix=spill_prefix) as spill:
        con.execute("set memory_limit = ?", [memory_limit])
        con.execute("set temp_directory = ?", [spill])
        con.execute("set enable_progress_bar = false")
        yield con
