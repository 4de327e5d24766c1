"""Input files: checked before dbt sees them (safe name, readable, parseable, required columns)."""

from __future__ import annotations

import contextlib
import csv
import difflib
import os
import re
from pathlib import Path

import duckdb

from python_analysis.errors import InputFileError, SegfitError

REQUIRED_COLUMNS = {
    "customers": ("customer_id", "profitability_segment", "retention_probability"),
    "transactions": ("transaction_id", "customer_id", "transaction_date", "amount"),
}
_UNSAFE = re.compile(r"['\";`\x00\r\n]")
_EXTENSIONS = (".csv", ".csv.gz", ".tsv", ".txt", ".parquet", ".pq")


def validate_path_text(raw: str, what: str) -> str:
    """Reject a path that could break out of a SQL string literal."""
    if _UNSAFE.search(raw):
        raise SegfitError(f"{what} contains a quote, semicolon or control character, which segfit does not allow: {raw!r}")
    return raw


def validate_input_file(path: str | os.PathLike[str], kind: str) -> Path:
    """Check an input file before dbt sees it: safe name, readable, parseable, required columns present."""
    resolved = Path(validate_path_text(os.fspath(path), f"{kind} path")).expanduser().resolve()
    if not resolved.name.lower().endswith(_EXTENSIONS):
        raise InputFileError(f"{kind} file {resolved}: unsupported file type (use CSV or Parquet)")
    if not resolved.is_file():
        raise InputFileError(f"{kind} file {resolved}: no such file")
    if resolved.stat().st_size == 0:
        raise InputFileError(f"{kind} file {resolved}: the file is empty (not even a header row)")
    reader = _reader_sql(resolved)
    with contextlib.closing(duckdb.connect()) as con:
        try:
            columns = [d[0] for d in con.execute(f"select * from {reader} limit 0").description]  # noqa: S608
            con.execute(f"select count(*) from {reader}").fetchone()  # noqa: S608 - full parse: ragged rows, bad bytes
        except duckdb.Error as exc:
            detail = _csv_problem(resolved) or " ".join(line.strip() for line in str(exc).strip().splitlines()[:4])
            raise InputFileError(f"{kind} file {resolved}: cannot be read: {detail}") from exc
    normalized = {c.replace("\ufeff", "").strip().lower() for c in columns}
    header = _header_fields(resolved)
    if header is not None and {h.replace("\ufeff", "").strip().lower() for h in header} != normalized:
        # DuckDB's sniffer can settle on another line as the header when rows are ragged
        problem = _csv_problem(resolved) or f"the header line {header} does not match the columns read {columns}"
        raise InputFileError(f"{kind} file {resolved}: cannot be read: {problem}")
    for required in REQUIRED_COLUMNS[kind]:
        if required not in normalized:
            close = difflib.get_close_matches(required, sorted(normalized), n=1, cutoff=0.75)
            hint = f" (did you mean to name column {close[0]!r} {required!r}?)" if close else ""
            raise InputFileError(
                f"{kind} file {resolved}: missing required column {required!r}{hint}; "
                f"found columns: {', '.join(sorted(normalized))}"
            )
    return resolved


def _reader_sql(path: Path) -> str:
    """The same reader the dbt macro duckdb__segfit_file_reader uses."""
    text = str(path)
    if text.lower().endswith((".parquet", ".pq")):
        return f"read_parquet('{text}')"
    delimiter = "\t" if text.lower().endswith(".tsv") else ","
    return f"read_csv('{text}', header = true, all_varchar = true, delim = '{delimiter}', strict_mode = true)"


def _header_fields(path: Path) -> list[str] | None:
    if path.name.lower().endswith((".parquet", ".pq", ".gz")):
        return None
    with path.open("rb") as handle:
        first = handle.readline().decode("utf-8", errors="replace").lstrip("\ufeff")
    return next(csv.reader([first], delimiter="\t" if path.name.lower().endswith(".tsv") else ","), [])


def _csv_problem(path: Path) -> str | None:
    """Find the first line that makes a delimited file unreadable: bad bytes or a ragged row."""
    if path.name.lower().endswith((".parquet", ".pq", ".gz")):
        return None
    delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
    with path.open("rb") as handle:
        header_fields = None
        for number, raw_line in enumerate(handle, start=1):
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"line {number} is not valid UTF-8 (byte {raw_line[exc.start:exc.start + 1]!r} at column {exc.start + 1})"
            if number == 1:
                line = line.lstrip("\ufeff")
            fields = next(csv.reader([line], delimiter=delimiter), [])
            if header_fields is None:
                header_fields = len(fields)
            elif fields and len(fields) != header_fields:
                return f"line {number} has {len(fields)} fields but the header has {header_fields} (ragged row)"
    return None
