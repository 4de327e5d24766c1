"""segfit's own checks page (checks.html): every expectation of every table with its result, rendered with
the report's template and stylesheet. It replaces GX's Data Docs in the report folder: those load 16
scripts and stylesheets from CDNs (nothing renders offline), call a warning "Failed", and copy 5.6 MB of
assets of which 3.4 MB are unused GIFs. This page is one self-contained file with no network request."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..quality import CheckConfig, CheckReport, FailedExpectation, expectation_suites
from . import formats
from .document import text_table
from .render import render_template

RESULT_WORDS = {"error": "failed", "warning": "warning"}


def _target(expectation: Any) -> str:
    for attribute in ("column", "column_A", "column_list", "column_set"):
        value = getattr(expectation, attribute, None)
        if value:
            if attribute == "column_A":
                return f"{value} vs {getattr(expectation, 'column_B', '')}"
            return ", ".join(value) if isinstance(value, list | tuple | set) else str(value)
    return ""


def _type(expectation: Any) -> str:
    return str(getattr(expectation, "expectation_type", None) or type(expectation).__name__)


def _findings(result: CheckReport) -> dict[tuple[str, str, str], FailedExpectation]:
    return {(f.table, f.expectation_type, f.column or ""): f for f in (*result.errors, *result.warnings)}


def _rows(table: str, expectations: Iterable[Any], found: dict) -> list[list[str]]:
    rows = []
    for e in expectations:
        meta = getattr(e, "meta", None) or {}
        target = _target(e)
        key_column = target if _type(e) != "expect_column_pair_values_to_be_equal" else target.split(" vs ")[0]
        finding = found.get((table, _type(e), key_column)) or found.get((table, _type(e), target))
        result = RESULT_WORDS.get(finding.severity, "failed") if finding else "passed"
        detail = ""
        if finding is not None:
            detail = (f"{formats.count(finding.unexpected_count)} unexpected" if finding.unexpected_count is not None
                      else "") + (": " + "; ".join(finding.offending) if finding.offending else "")
        rows.append([_type(e).removeprefix("expect_").replace("_", " "), target, str(meta.get("severity", "error")),
                     result, detail or str(meta.get("check", ""))])
    return rows


def checks_page(result: CheckReport, config: CheckConfig) -> str:
    """The HTML of the checks page."""
    found = _findings(result)
    suites = expectation_suites(config)
    tables = [text_table(["Check", "Column", "Severity", "Result", "Detail"], _rows(name, exps, found),
                         f"{name}: {formats.count(len(exps))} checks") for name, exps in suites.items()]
    failures = text_table(["Severity", "Table", "Check", "Column", "Unexpected", "Examples"], [
        [f.severity, f.table, f.expectation_type.removeprefix("expect_").replace("_", " "), f.column or "",
         formats.count(f.unexpected_count), "; ".join(f.offending)] for f in (*result.errors, *result.warnings)],
        "Errors and warnings")
    summary = (f"{formats.count(result.evaluated)} expectations evaluated, {formats.count(result.skipped)} skipped "
               f"(aggregates on empty tables): {formats.count(len(result.errors))} errors, "
               f"{formats.count(len(result.warnings))} warnings. A warning is reported, not a failure: it does not "
               "stop the run.")
    in_sql = getattr(result, "validated_in_sql", None) or {}
    if in_sql:
        summary += (" Validated in SQL over every row (the same expectations, translated): "
                    + ", ".join(f"{t} ({formats.count(n)} rows)" for t, n in in_sql.items()) + ".")
    return render_template("checks.html.j2", title="segfit data-quality checks", summary=summary,
                           failures=failures, tables=tables)
