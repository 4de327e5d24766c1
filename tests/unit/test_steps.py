"""The steps' small helpers: the background import that `segfit run` starts while dbt builds."""

from __future__ import annotations

import logging
import subprocess
import sys

from python_analysis import steps


def test_a_failing_background_import_is_logged_not_raised(caplog):
    def broken() -> None:
        raise ImportError("no module named planted")

    with caplog.at_level(logging.DEBUG, logger="python_analysis.steps"):
        steps._import_quietly(broken)  # a thread must not print a traceback; the checks raise it later
    assert any("background import failed" in r.getMessage() and r.exc_info for r in caplog.records)


def test_the_preload_imports_what_the_checks_use(tmp_path):
    # in a fresh interpreter running a script file, as `segfit run` is: with pyspark installed,
    # great-expectations imports it, and pyspark calls sys.exit(0) when `__main__` has no file (a pytest-xdist
    # worker, `python -c`), which is not what is tested here
    names = ["great_expectations", "great_expectations.expectations", "great_expectations.data_context.types.base",
             "great_expectations.core.run_identifier"]
    script = ("import sys\nfrom python_analysis import quality\nquality.import_great_expectations()\n"
              f"print(sorted(set({names!r}) - set(sys.modules)))\n")
    (tmp_path / "preload.py").write_text(script, encoding="utf-8")
    result = subprocess.run([sys.executable, str(tmp_path / "preload.py")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
