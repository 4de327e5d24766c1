"""Incremental daily load vs full rebuild (#13): `segfit build --append-transactions <one day>` on top of a
published warehouse holding every earlier day, against `segfit build --transactions <all days>`.

For each size (N customers : M transactions, time order, the generator of bench_build.py):

1. splits the generated ``transactions.parquet`` (sorted by date) into ``base.parquet`` (every day but the
   last two), ``previous_day.parquet`` and ``day.parquet`` (the last day), checking that they are the whole
   file in that order;
2. builds the base once with `segfit build --transactions base.parquet --store-transactions` (not timed:
   the build a warehouse that takes daily appends starts with);
3. appends the day before the last (`first_append`, timed and reported, not the headline: its vars differ
   from the store build's, so dbt parses the whole project), then times the last day's append, the daily
   case (`incremental`: copy of the published warehouse, dbt build appending the day, publish; dbt starts
   from the previous build's saved parse, as every append after the first does);
4. times a full rebuild `segfit build --transactions transactions.parquet` (same rows, same order; a plain
   full build, which does not store the clean transactions: the cheapest rebuild) into its own
   warehouse, with a published previous build beside it as in daily use (for the history);
5. checks that the two warehouses' customer_segment_fit agree (row count and the sum of
   transaction_count and total_revenue), and reports wall, CPU (user + sys of the process tree, less
   sensitive to other load) and the dbt model sum from run_results.json, and the ratios
   incremental / full (target: wall <= 0.25).

Each timed build starts from a settled disk (``--before-each``: sync by default; see BEFORE_EACH).

    .venv/bin/python benchmarks/bench_incremental.py --sizes 200000:4000000
    make bench-incremental SIZES=1000000:20000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_build  # noqa: E402 - the shared helpers (tests/unit/test_benchmarks.py checks they exist)
import duckdb  # noqa: E402

PROJECT_DIR = bench_build.PROJECT_DIR
log = bench_build.log


def split_last_days(transactions: Path, out: Path) -> dict[str, object]:
    """base.parquet (every date but the last two), previous_day.parquet (the second-to-last date) and
    day.parquet (the last date), in file order."""
    con = duckdb.connect()
    source = f"read_parquet('{transactions}', file_row_number = true)"
    total, last_day = con.execute(f"select count(*), max(transaction_date) from {source}").fetchone()
    previous_day = con.execute(f"select max(transaction_date) from {source} where transaction_date < $1",
                               [last_day]).fetchone()[0]
    parts = (("base", "transaction_date < $1", previous_day), ("previous_day", "transaction_date = $1", previous_day),
             ("day", "transaction_date = $1", last_day))
    expected_start = 0
    rows = {}
    for name, condition, date in parts:
        count, first_row, last_row = con.execute(
            f"select count(*), min(file_row_number), max(file_row_number) from {source} where {condition}",
            [date]).fetchone()
        if first_row != expected_start or last_row != expected_start + count - 1:
            raise SystemExit(f"{transactions}: the {name} rows are not one run of the file in date order "
                             "(time order needed)")
        expected_start += count
        rows[name] = count
    paths = {name: out / f"{name}.parquet" for name, _, _ in parts}
    if not all(p.exists() for p in paths.values()):
        for name, condition, date in parts:
            con.execute(f"copy (select * exclude (file_row_number) from {source} where {condition} "
                        f"order by file_row_number) to '{paths[name]}' (format parquet)", [date])
    return {"paths": paths, "last_day": str(last_day), "previous_day": str(previous_day),
            "day_rows": rows["day"], "previous_day_rows": rows["previous_day"], "base_rows": rows["base"],
            "total_rows": total}


# What happens before each timed build (--before-each): the builds run back to back here, while a daily append
# comes a day after the build before it. "sync" (the default) flushes the previous step's writes first (each
# build starts with nothing pending on the disk; files stay in the page cache); "drop-caches" also empties the
# page cache (every file is read from disk: the coldest case; needs root); "nothing" runs them as they come
# (sessions 6-9: a build then waits for the previous one's gigabytes of writeback, which the append's copy of
# the warehouse feels most).
BEFORE_EACH = ("sync", "drop-caches", "nothing")


def settle(before_each: str) -> float:
    """Prepare the machine as ``before_each`` says; returns the seconds it took (not part of the build)."""
    started = time.perf_counter()
    if before_each in ("sync", "drop-caches"):
        os.sync()
    if before_each == "drop-caches":
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    return time.perf_counter() - started


def segfit_build(args: list[str], warehouse: Path, workdir: Path, label: str, before_each: str = "sync") -> dict:
    """One ``segfit build`` as a user runs it (dbt's artifacts in the build's own ``dbt_target/``, where the
    next build finds the saved parse); its run_results are read from the published build."""
    segfit = Path(sys.executable).with_name("segfit")
    command = [str(segfit), "build", *args, "--warehouse", str(warehouse)]
    env = {k: v for k, v in os.environ.items() if k not in ("DBT_TARGET_PATH", "DBT_LOG_PATH")}
    settle_s = settle(before_each)
    load_before = os.getloadavg()[0]
    measured = bench_build.run_measured(command, env=env, log_path=workdir / f"{label}.log", cwd=PROJECT_DIR)
    if measured["exit_code"] != 0:
        raise SystemExit(f"{label} failed (exit {measured['exit_code']}); log {workdir / f'{label}.log'}")
    artifacts = warehouse.resolve().parent / "dbt_target"
    measured.update(bench_build.summarize_run_results(artifacts / "run_results.json"))
    measured["parse"] = parse_facts(artifacts)
    measured["loadavg_1m_before"] = load_before
    measured["before_each"] = before_each
    measured["settle_s"] = settle_s
    measured["command"] = " ".join(command)
    measured["cpu_s"] = measured["cpu_user_s"] + measured["cpu_sys_s"]
    measured.pop("marks", None)
    return measured


def parse_facts(artifacts: Path) -> dict[str, object]:
    """How dbt parsed the project for this build, from its debug log: partial (reused the saved parse) or full."""
    path = artifacts / "logs" / "dbt.log"
    lines = [line.split("]: ", 1)[-1].strip() for line in path.read_text(errors="replace").splitlines()
             if "partial pars" in line.lower()] if path.is_file() else []
    return {"partial": any(line.startswith("Partial parsing enabled") for line in lines), "log": lines[:3]}


def fit_summary(warehouse: Path) -> tuple:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("select count(*), sum(transaction_count), round(sum(total_revenue), 2) "
                           "from marts.customer_segment_fit").fetchone()


def recomputed_records(warehouse: Path) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select transactions_through_row, count(*) from "
                           "intermediate.int_customer_transactions_aggregated group by 1 order by 1").fetchall()
        no_date = con.execute("select count(*) from intermediate.int_customer_transactions_aggregated "
                              "where segmentation_date is null").fetchone()[0]
    return {"records": sum(c for _, c in rows), "recomputed_by_last_run": rows[-1][1],
            "records_without_segmentation_date": no_date}


def bench(n: int, m: int, seed: int, data_dir: Path, before_each: str = "sync") -> dict:
    inputs = bench_build.ensure_data(n, m, seed, data_dir, order="time")
    workdir = data_dir / f"incremental_{n}_{m}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    days_dir = data_dir / f"{n}_{m}_time_days"
    days_dir.mkdir(exist_ok=True)
    split = split_last_days(inputs["transactions"], days_dir)
    log(f"{n}:{m}: last day {split['last_day']}, {split['day_rows']:,} transactions on it; the day before "
        f"{split['previous_day_rows']:,}")
    customers = ["--customers", str(inputs["customers"])]

    appended = workdir / "appended" / "segfit.duckdb"
    appended.parent.mkdir()
    log("base build (not timed)")
    base = segfit_build([*customers, "--transactions", str(split["paths"]["base"]), "--store-transactions"],
                        appended, workdir, "base")
    log("first append onto the stored build: --append-transactions previous_day.parquet")
    first_append = segfit_build([*customers, "--append-transactions", str(split["paths"]["previous_day"])],
                                appended, workdir, "first_append", before_each)
    log(f"first append: {first_append['wall_s']:.1f} s wall, {first_append['cpu_s']:.1f} CPU s")
    log("incremental (the next day's append, as in daily use): --append-transactions day.parquet")
    incremental = segfit_build([*customers, "--append-transactions", str(split["paths"]["day"])], appended,
                               workdir, "incremental", before_each)
    log(f"incremental: {incremental['wall_s']:.1f} s wall, {incremental['cpu_s']:.1f} CPU s")

    full_warehouse = workdir / "full" / "segfit.duckdb"
    full_warehouse.parent.mkdir()
    # daily use: a full rebuild also replaces a published build (its history is carried over)
    shutil.copytree(appended.parent, full_warehouse.parent, symlinks=True, dirs_exist_ok=True)
    log("full rebuild: --transactions transactions.parquet")
    full = segfit_build([*customers, "--transactions", str(inputs["transactions"])], full_warehouse, workdir, "full", before_each)
    log(f"full: {full['wall_s']:.1f} s wall, {full['cpu_s']:.1f} CPU s")

    same = fit_summary(appended) == fit_summary(full_warehouse)
    result = {
        "n_customers": n, "n_transactions": m, "split": {k: v for k, v in split.items() if k != "paths"},
        "base_build": base, "first_append": first_append, "incremental": incremental, "full": full,
        "customer_segment_fit_agrees": same, "fit_summary": fit_summary(full_warehouse),
        "incremental_records": recomputed_records(appended),
        "ratio_wall": incremental["wall_s"] / full["wall_s"],
        "ratio_cpu": incremental["cpu_s"] / full["cpu_s"],
        "first_append_ratio_wall": first_append["wall_s"] / full["wall_s"],
        "first_append_ratio_cpu": first_append["cpu_s"] / full["cpu_s"],
        "ratio_model_sum": (incremental.get("model_sum_s") or 0) / (full.get("model_sum_s") or 1),
    }
    if not same:
        raise SystemExit(f"the incremental and the full warehouse differ: {fit_summary(appended)} vs "
                         f"{fit_summary(full_warehouse)}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200000:4000000", help="N:M[,N:M...] (default 200000:4000000)")
    parser.add_argument("--seed", type=int, default=None, help="data seed (default: demo_data.DEFAULT_SEED)")
    parser.add_argument("--data-dir", type=Path, default=PROJECT_DIR / "benchmarks" / "data")
    parser.add_argument("--out", type=Path, default=PROJECT_DIR / "benchmarks" / "results" / "incremental.json")
    parser.add_argument("--before-each", choices=BEFORE_EACH, default="sync",
                        help="before each timed build: flush pending writes (sync, the default), also empty the "
                             "page cache (drop-caches, needs root), or nothing")
    args = parser.parse_args(argv)
    if args.seed is None:
        sys.path.insert(0, str(PROJECT_DIR))
        from python_analysis.demo_data import DEFAULT_SEED

        args.seed = DEFAULT_SEED
    result = {"machine": bench_build.machine_facts(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "before_each": args.before_each, "sizes": []}
    for n, m in bench_build.parse_sizes(args.sizes):
        size = bench(n, m, args.seed, args.data_dir, args.before_each)
        result["sizes"].append(size)
        args.out.write_text(json.dumps(result, indent=2, default=str))
        print(f"| {n:,} / {m:,} | day {size['split']['day_rows']:,} rows | incremental "
              f"{size['incremental']['wall_s']:.1f} s ({size['incremental']['cpu_s']:.1f} CPU s) | full "
              f"{size['full']['wall_s']:.1f} s ({size['full']['cpu_s']:.1f} CPU s) | ratio wall "
              f"{size['ratio_wall']:.2f}, CPU {size['ratio_cpu']:.2f}, model sum {size['ratio_model_sum']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
