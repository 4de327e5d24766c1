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


def test_run_results_give_the_models_sum_span_and_the_threads_dbt_ran_them_on(tmp_path):
    """Two models overlapping on two worker threads (0-2 s and 1-4 s) and a test: sum 5 s, span 4 s, 2 threads;
    the on-run-start hook runs on dbt's main thread and is not a worker."""
    import json

    def node(uid: str, thread: str, start: float, end: float) -> dict:
        stamp = "2026-01-01T00:00:{:06.3f}Z"
        return {"unique_id": uid, "status": "success", "thread_id": thread, "execution_time": end - start,
                "timing": [{"name": "execute", "started_at": stamp.format(start), "completed_at": stamp.format(end)}]}

    results = {"metadata": {"invocation_id": "x"}, "elapsed_time": 4.5, "results": [
        node("operation.segfit.hook", "main", 0, 0.1),
        node("model.segfit.a", "Thread-1 (worker)", 0, 2),
        node("model.segfit.b", "Thread-2 (worker)", 1, 4),
        node("test.segfit.t", "Thread-1 (worker)", 2, 2.5),
    ]}
    path = tmp_path / "run_results.json"
    path.write_text(json.dumps(results))
    summary = _load(BENCH_DIR / "bench_build.py").summarize_run_results(path)
    assert summary["model_sum_s"] == pytest.approx(5.0)
    assert summary["model_span_s"] == pytest.approx(4.0)
    assert summary["test_s"] == pytest.approx(0.5)
    assert summary["dbt_threads"] == 2


def test_each_step_of_a_run_gets_the_peak_of_its_own_polls():
    bench = _load(BENCH_DIR / "bench_build.py")
    marks = [[0.5, "segfit: [1/3] build"], [0.6, "segfit: building customers=x"], [10.0, "segfit: [2/3] checks"],
             [14.0, "segfit: [3/3] report"], [20.0, "segfit: published w"]]
    timeline = [(0.1, 9), (1.0, 100), (9.9, 300), (10.0, 50), (13.9, 70), (14.0, 200), (25.0, 250)]
    # a poll before the first step (segfit's start) belongs to no step; the last step runs to the end
    assert bench.step_peaks(marks, timeline) == {"build": 300, "checks": 70, "report": 250}
    assert bench.step_peaks(marks[:1], timeline) == {"build": 300}
