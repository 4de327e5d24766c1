"""Input files: checked before dbt sees them (readable, parseable, required columns).

Paths are data, never code: the pre-check passes the path to DuckDB as a prepared-statement parameter
and escapes DuckDB's glob characters, so ``c[1].csv`` reads exactly that file and ``c*.csv`` never a
folder; the dbt macros get the path through an environment variable (never a dbt var, which dbt renders
as Jinja) and write it as an escaped SQL string literal. A legitimate quote (``O'Brien``) just works.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import io
import os
import re
import sys
from pathlib import Path

import duckdb

from python_analysis.errors import InputFileError, SegfitError

REQUIRED_COLUMNS = {
    "customers": ("customer_id", "profitability_segment", "retention_probability"),
    "transactions": ("transaction_id", "customer_id", "transaction_date", "amount"),
}
_UNSAFE = re.compile(r"['\";`\x00\r\n]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EXTENSIONS = (".csv", ".csv.gz", ".tsv", ".txt", ".parquet", ".pq")
_PARQUET = (".parquet", ".pq")
# staging's own column names (macros/segfit_inputs.sql, segfit_reserved_columns): an input may not use them
_TYPED = ("retention_probability", "segmentation_date", "transaction_date", "amount", "profit",
          "comprehensive_customer_score", "total_revenue", "net_profit", "avg_transactions_per_month",
          "transaction_value_volatility", "transaction_count", "q1_transactions", "q2_transactions",
          "q3_transactions", "q4_transactions", "customer_age_days")
RESERVED_COLUMNS = ("_segfit_row_number", "source_row_number", "input_label", *(f"{t}_raw" for t in _TYPED))


def validate_path_text(raw: str, what: str) -> str:
    """Reject a text that could break out of a SQL string literal (used for var values and the warehouse)."""
    if _UNSAFE.search(raw):
        raise SegfitError(f"{what} contains a quote, semicolon or control character, which segfit does not allow: {raw!r}")
    return raw


def validate_control_free(raw: str, what: str) -> str:
    """Reject a path with a control character (a newline, NUL): it cannot be shown or logged faithfully.

    Quotes and semicolons are fine: every path reaches SQL as an escaped literal or a bound parameter."""
    if _CONTROL.search(raw):
        raise SegfitError(f"{what} contains a control character (e.g. a newline), which segfit does not allow: {raw!r}")
    return raw


def literal_file_pattern(path: str) -> str:
    """A file name DuckDB's readers match literally: each glob character becomes a one-character class.

    DuckDB 2.0 has no way to switch globbing off and treats a backslash as a plain character, but
    ``[[]``, ``[*]`` and ``[?]`` match exactly ``[``, ``*`` and ``?``. Same as the dbt macro
    segfit_literal_file_pattern.
    """
    return path.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")


def is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(_PARQUET)


def _delimiter(path: Path) -> str:
    return "\t" if path.name.lower().endswith(".tsv") else ","


def reader_sql(path: Path, *, header: bool = True) -> str:
    """The reader the dbt macro duckdb__segfit_file_reader uses, with the path as parameter ``?``.

    CSV dialect settings are explicit (RFC 4180 quoting, no comment lines, the first line is the header),
    so nothing is guessed from a sample: a quoted field after row 20,000 parses like one in row 2.
    """
    if is_parquet(path):
        return "read_parquet(?)"
    delimiter = "'\\t'" if _delimiter(path) == "\t" else "','"
    return (
        f"read_csv(?, header = {'true' if header else 'false'}, all_varchar = true, strict_mode = true, "
        f"delim = {delimiter}, quote = '\"', escape = '\"', comment = '', skip = 0)"
    )


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB session with segfit's settings (time zone UTC, as profiles/profiles.yml)."""
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    return con


def resolve_input_path(path: str | os.PathLike[str], kind: str) -> Path:
    text = os.fspath(path)
    if _CONTROL.search(text):
        raise InputFileError(f"{kind} path {text!r} contains a control character (e.g. a newline); rename the file")
    try:
        resolved = Path(text).expanduser().resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise InputFileError(f"{kind} file {text}: cannot be resolved ({exc})") from exc
    if _CONTROL.search(str(resolved)):
        raise InputFileError(
            f"{kind} file {text} points to {str(resolved)!r}, which contains a control character; rename it"
        )
    return resolved


def validate_input_file(path: str | os.PathLike[str], kind: str) -> Path:
    """Check an input file before dbt sees it: readable, parseable, required columns present."""
    resolved = resolve_input_path(path, kind)
    if not resolved.name.lower().endswith(_EXTENSIONS):
        raise InputFileError(f"{kind} file {resolved}: unsupported file type (use CSV or Parquet)")
    if not resolved.is_file():
        raise InputFileError(f"{kind} file {resolved}: no such file")
    if resolved.stat().st_size == 0:
        raise InputFileError(f"{kind} file {resolved}: the file is empty (not even a header row)")
    pattern = literal_file_pattern(str(resolved))
    reader = reader_sql(resolved)
    with contextlib.closing(connect()) as con:
        try:
            columns = [d[0] for d in con.execute(f"select * from {reader} limit 0", [pattern]).description]  # noqa: S608 - fixed reader text, path is a parameter
            con.execute(f"select count(*) from {reader}", [pattern]).fetchone()  # noqa: S608 - full parse: ragged rows, bad bytes
        except duckdb.Error as exc:
            detail = _csv_problem(resolved) or _duckdb_problem(str(exc))
            raise InputFileError(f"{kind} file {resolved}: cannot be read: {detail}") from exc
    normalized: dict[str, str] = {}
    for column in columns:
        name = column.replace("\ufeff", "").strip().lower()
        if name in normalized:
            raise InputFileError(
                f"{kind} file {resolved}: columns {normalized[name]!r} and {column!r} both mean {name!r} "
                "(headers are matched case-insensitively)"
            )
        reserved = RESERVED_COLUMNS + (("file_row_number",) if is_parquet(resolved) else ())
        if name in reserved:
            raise InputFileError(
                f"{kind} file {resolved}: column {column!r} uses a name segfit reserves for its own use "
                f"({'the Parquet reader numbers rows in it' if name == 'file_row_number' else 'staging'}); "
                "rename the column"
            )
        normalized[name] = column
    for required in REQUIRED_COLUMNS[kind]:
        if required not in normalized:
            close = difflib.get_close_matches(required, sorted(normalized), n=1, cutoff=0.75)
            hint = f" (did you mean to name column {close[0]!r} {required!r}?)" if close else ""
            raise InputFileError(
                f"{kind} file {resolved}: missing required column {required!r}{hint}; "
                f"found columns: {', '.join(sorted(normalized))}"
            )
    return resolved


def _duckdb_problem(message: str) -> str:
    """DuckDB's error in one short line (it can quote a whole 2 MB line of the file)."""
    too_long = re.search(r"Maximum line size of (\d+) bytes exceeded", message)
    if too_long:
        where = re.search(r"CSV Error on Line: (\d+)", message)
        at = f" (DuckDB's CSV line {where.group(1)})" if where else ""
        return f"a line is longer than the CSV reader's limit of {int(too_long.group(1)):,} bytes{at}"
    lines = [line.strip() for line in message.strip().splitlines()[:4]]
    return " ".join(line if len(line) <= 300 else line[:300] + "..." for line in lines)


def _csv_problem(path: Path) -> str | None:
    """Find the first line that makes a delimited file unreadable: bad bytes, a bad quote or a ragged row.

    Only runs after DuckDB refused the file. Any line length, field size and line end (LF, CRLF, CR) is
    handled: the field size limit is lifted and the csv module reads the file with universal newlines.
    """
    if is_parquet(path) or path.name.lower().endswith(".gz"):
        return None
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            try:
                raw_line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"line {number} is not valid UTF-8 (byte {raw_line[exc.start:exc.start + 1]!r} at column {exc.start + 1})"
    previous_limit = csv.field_size_limit(sys.maxsize)
    try:
        with path.open("rb") as handle:
            text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
            reader = csv.reader(text, delimiter=_delimiter(path), strict=True)
            header_fields = None
            start = 1
            try:
                for fields in reader:
                    if header_fields is None:
                        header_fields = len(fields)
                    elif fields and len(fields) != header_fields:
                        return (f"line {start} has {len(fields)} fields but the header has {header_fields} "
                                "(ragged row)")
                    start = reader.line_num + 1
            except csv.Error as exc:
                hint = " (an unterminated quote?)" if "end of data" in str(exc) or "expected" in str(exc) else ""
                return f"line {start}: bad quoting: {exc}{hint}"
    finally:
        csv.field_size_limit(previous_limit)
    return None
