"""Time `segfit check` (wall, peak RSS of the process tree) on an existing warehouse, for one code tree.

    .venv/bin/python benchmarks/bench_check.py --warehouse W [--code-dir DIR] [--runs 1] [--out JSON]

``--code-dir`` runs the ``python_analysis`` package found in DIR (e.g. an older commit extracted with
``git archive <commit> python_analysis | tar -x -C DIR``) with this venv, to compare before and after on
the same warehouse. The measurement (psutil tree poll, wait4) is bench_build's ``run_measured``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_build  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--code-dir", type=Path, default=bench_build.PROJECT_DIR)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--label", default=None)
    parser.add_argument("--out", type=Path, default=None, help="append the result as one JSON line")
    args = parser.parse_args(argv)
    code = (f"import sys; sys.path.insert(0, {str(args.code_dir)!r}); from python_analysis import cli; "
            f"raise SystemExit(cli.main(['check', '--warehouse', {str(args.warehouse)!r}, '--out', sys.argv[1]]))")
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="segfit-bench-check-") as tmp:
            log_path = Path(tmp) / "check.log"
            load = os.getloadavg()[0]
            measured = bench_build.run_measured([sys.executable, "-c", code, str(Path(tmp) / "out")], env=None,
                                                log_path=log_path, cwd=args.code_dir)
            measured["loadavg_1m_before"] = load
            measured["log_tail"] = log_path.read_text()[-1500:]
            runs.append(measured)
            bench_build.log(f"check run {i + 1}: exit {measured['exit_code']}, wall {measured['wall_s']:.1f}s, "
                            f"peak tree RSS {bench_build.gb(measured['peak_tree_rss_bytes'])} GB, load {load:.1f}")
    result = {"label": args.label, "warehouse": str(args.warehouse), "code_dir": str(args.code_dir),
              "machine": bench_build.machine_facts(), "runs": runs,
              "median_wall_s": bench_build.median([r["wall_s"] for r in runs]),
              "median_peak_tree_rss_bytes": bench_build.median([r["peak_tree_rss_bytes"] for r in runs])}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(result, default=str) + "\n")
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
