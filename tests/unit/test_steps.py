"""The steps' small helpers: the background import that `segfit run` starts while dbt builds."""

from __future__ import annotations

import logging
import sys

from python_analysis import quality, steps


def test_a_failing_background_import_is_logged_not_raised(caplog):
    def broken() -> None:
        raise ImportError("no module named planted")

    with caplog.at_level(logging.DEBUG, logger="python_analysis.steps"):
        steps._import_quietly(broken)  # a thread must not print a traceback; the checks raise it later
    assert any("background import failed" in r.getMessage() and r.exc_info for r in caplog.records)


def test_the_preload_imports_what_the_checks_use():
    quality.import_great_expectations()
    for name in ("great_expectations", "great_expectations.expectations",
                 "great_expectations.data_context.types.base", "great_expectations.core.run_identifier"):
        assert name in sys.modules, name
