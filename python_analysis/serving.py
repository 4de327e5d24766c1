"""How readers connect to the published warehouse: the recipes `segfit` prints and the README shows.

Every recipe opens the published path (a link to the current build), read-only, and never holds a
connection across builds: DuckDB resolves the link when a connection opens, so the next new connection
sees the newest build even inside a long-lived process.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

EXAMPLE_SUMMARY_QUERY = "select * from marts.segment_retention_summary"
EXAMPLE_ANOMALY_QUERY = "select * from marts.classification_anomalies order by anomaly_rank limit 10"

# SQLAlchemy (duckdb_engine) options: read-only, no file access from SQL, and no way to turn that back on.
HARDENED_URL_OPTIONS = "access_mode=read_only&enable_external_access=false&lock_configuration=true"


def sqlalchemy_url(published: Path) -> str:
    """The URL for SQLAlchemy-based BI tools (Superset, pandas.read_sql, ...)."""
    return f"duckdb:///{published}?{HARDENED_URL_OPTIONS}"


def cli_command(published: Path, sql: str = EXAMPLE_SUMMARY_QUERY) -> str:
    """The DuckDB CLI (`duckdb-cli`, installed into segfit's environment) on the published file."""
    duckdb_cli = Path(sys.executable).with_name("duckdb")
    return f"{shlex.quote(str(duckdb_cli))} -readonly {shlex.quote(str(published))} {shlex.quote(sql)}"


def python_command(published: Path, sql: str = EXAMPLE_ANOMALY_QUERY) -> str:
    """A one-line Python reader, with the interpreter that has duckdb installed."""
    code = f"import duckdb; print(duckdb.connect({json.dumps(str(published))}, read_only=True).sql({json.dumps(sql)}))"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def how_to_query(published: Path) -> str:
    """The hint `segfit build` and `segfit run` print: commands that work on a fresh install."""
    return "\n".join(
        [
            f"segfit: marts are in {published} (schema marts), e.g.:",
            f"  {cli_command(published)}",
            f"  {python_command(published)}",
            f"  SQLAlchemy / BI tools: {sqlalchemy_url(published)}  (use NullPool; see the README)",
        ]
    )
