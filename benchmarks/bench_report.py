"""Benchmark `segfit report` on the 1M-customer warehouse (targets: <= 30 s wall, <= 2 GB peak RSS).

Builds the warehouse with ``segfit build`` from the same cached Parquet inputs as ``bench_build.py``
(``benchmarks/data/<N>_<M>/``, written when missing), or reuses ``--warehouse`` when given, then times
``segfit report --warehouse W --out <tmp>`` ``--runs`` times as a subprocess, with the peak RSS of the
whole process tree (psutil poll every 50 ms, max of the SUM) and of the largest single process
(``os.wait4`` ``ru_maxrss``). The report may write analysis tables back into the warehouse, so every run
gets a fresh copy of the built warehouse.

Usage::

    .venv/bin/python benchmarks/bench_report.py                         # 1000000:20000000, 1 run
    .venv/bin/python benchmarks/bench_report.py --size 20000:400000     # smoke run
    .venv/bin/python benchmarks/bench_report.py --warehouse warehouse/segfit.duckdb --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_build as bb  # noqa: E402

DEFAULT_SIZE = "1000000:20000000"
TARGET_WALL_S = 30.0
TARGET_RSS_GB = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default=DEFAULT_SIZE, help=f"N:M (default {DEFAULT_SIZE})")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--warehouse", type=Path, default=None, help="reuse this built warehouse (copied)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=bb.DATA_DIR)
    parser.add_argument("--out", type=Path, default=bb.BENCH_DIR / "results" / "report_latest.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (report output, logs)")
    args = parser.parse_args(argv)

    (n, m), = bb.parse_sizes(args.size)
    facts = bb.machine_facts()
    workdir = Path(tempfile.mkdtemp(prefix=f"segfit-bench-report-{n}_{m}-"))
    result: dict = {"machine": facts, "size": {"n_customers": n, "n_transactions": m},
                    "targets": {"wall_s": TARGET_WALL_S, "peak_rss_gb": TARGET_RSS_GB}, "runs": []}
    segfit = Path(sys.executable).with_name("segfit")
    segfit_cmd = str(segfit if segfit.exists() else "segfit")
    try:
        if args.warehouse:
            built = args.warehouse.resolve()
            result["build"] = {"reused": str(built)}
        else:
            if args.seed is None:
                sys.path.insert(0, str(bb.PROJECT_DIR))
                from python_analysis.demo_data import DEFAULT_SEED

                args.seed = DEFAULT_SEED
            paths = bb.ensure_data(n, m, args.seed, args.data_dir)
            bb.PRIVATE_TARGET.mkdir(parents=True, exist_ok=True)
            bb.log(f"building the {n:,}-customer warehouse ...")
            build = bb.run_segfit(paths, workdir, bb.PRIVATE_TARGET, "report-build", command_name="build")
            build.pop("models", None)
            build.pop("marks", None)
            result["build"] = build
            # the published warehouse is a link into its builds/ directory: copy the file it points at
            built = (workdir / "report-build" / "segfit.duckdb").resolve()
            bb.log(f"built in {build['wall_s']:.1f}s")

        for i in range(1, args.runs + 1):
            warehouse = workdir / f"report-{i}.duckdb"
            shutil.copyfile(built, warehouse)
            out_dir = workdir / f"report-out-{i}"
            command = [segfit_cmd, "report", "--warehouse", str(warehouse), "--out", str(out_dir)]
            log_path = workdir / f"report-{i}.log"
            bb.log(f"run {i}: {' '.join(command)}")
            measured = bb.run_measured(command, env=dict(os.environ), log_path=log_path, cwd=bb.PROJECT_DIR)
            measured["command"] = " ".join(command)
            measured["log_tail"] = log_path.read_text()[-3000:]
            measured["output_files"] = (
                sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())[:50]
                if out_dir.is_dir() else []
            )
            result["runs"].append(measured)
            status = "ok" if measured["exit_code"] == 0 else f"FAILED (exit {measured['exit_code']})"
            bb.log(f"run {i}: {status}, wall {measured['wall_s']:.1f}s, "
                   f"peak tree RSS {bb.gb(measured['peak_tree_rss_bytes'])} GB")
            if measured["exit_code"] != 0:
                bb.log("report log tail:\n" + measured["log_tail"])
            warehouse.unlink(missing_ok=True)
    finally:
        if args.keep:
            bb.log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    ok_runs = [r for r in result["runs"] if r["exit_code"] == 0]
    wall = statistics.median(r["wall_s"] for r in ok_runs) if ok_runs else None
    rss = max((r["peak_tree_rss_bytes"] for r in ok_runs), default=None)
    single = max((r["ru_maxrss_largest_process_bytes"] for r in ok_runs), default=None)
    result["summary"] = {
        "ok_runs": len(ok_runs),
        "failed_runs": len(result["runs"]) - len(ok_runs),
        "median_wall_s": wall,
        "max_peak_tree_rss_bytes": rss,
        "max_ru_maxrss_largest_process_bytes": single,
        "meets_wall": wall is not None and wall <= TARGET_WALL_S,
        "meets_rss": rss is not None and rss <= TARGET_RSS_GB * 1024**3,
    }
    table = "\n".join([
        "| customers | transactions | ok runs | failed | report wall s (<= 30) | peak RSS tree GB (<= 2) "
        "| ru_maxrss largest proc GB |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {n:,} | {m:,} | {len(ok_runs)} | {result['summary']['failed_runs']} | {bb.fmt(wall)} "
        f"| {bb.gb(rss)} | {bb.gb(single)} |",
    ])
    result["markdown"] = table
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(table)
    print(f"\nwrote {args.out}")
    return 0 if ok_runs and not result["summary"]["failed_runs"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
