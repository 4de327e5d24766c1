"""Writing the report's model tables back into schema ``analysis`` of a warehouse file segfit owns."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from python_analysis.errors import SegfitError


def write_analysis_tables(path: Path, frames: Mapping[str, pd.DataFrame]) -> None:
    """Replace tables in schema ``analysis`` of a warehouse file we own for writing."""
    with contextlib.closing(duckdb.connect(str(path))) as con:
        con.execute("create schema if not exists analysis")
        for name, frame in frames.items():
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                raise SegfitError(f"bad analysis table name {name!r}")
            # scanned as Arrow: DuckDB reads the columns in place (a 1M-row pandas frame of text took seconds)
            con.register("frame_to_write", pa.Table.from_pandas(frame, preserve_index=False))
            con.execute(f"create or replace table analysis.{name} as select * from frame_to_write")  # noqa: S608
            con.unregister("frame_to_write")
        con.execute("checkpoint")
