"""The benchmark scripts share helpers from ``benchmarks/bench_build.py``; no test runs them (they take minutes
at the sizes that matter), so a renamed helper broke ``bench_report.py`` silently once (session 2:
``bench_build.run_build``). This checks statically that every ``bench_build`` attribute the other scripts use
exists, and that each script imports."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(p for p in BENCH_DIR.glob("bench_*.py") if p.name != "bench_build.py")


def _load(path: Path):
    sys.path.insert(0, str(BENCH_DIR))
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH_DIR))


def _bench_build_attributes_used(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    aliases = {"bench_build"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname for a in node.names if a.name == "bench_build" and a.asname}
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_scripts_use_only_helpers_that_exist(script):
    bench_build = _load(BENCH_DIR / "bench_build.py")
    used = _bench_build_attributes_used(script)
    assert used, f"{script.name} no longer uses bench_build: update this test"
    missing = sorted(name for name in used if not hasattr(bench_build, name))
    assert not missing, f"{script.name} uses bench_build.{missing}, which does not exist"
    _load(script)
