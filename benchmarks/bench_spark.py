"""The Spark lane beside DuckDB: `segfit run --engine duckdb` and `segfit run --engine spark` on the same inputs,
in the same run, and where the Spark time goes.

For every size N:M (inputs from ``bench_build.ensure_data``, cached in ``benchmarks/data/<N>_<M>_<order>/``) and
every engine of ``--engines`` (default ``duckdb,spark``), one after the other, ``--runs`` times:

* ``segfit run --engine E --customers ... --transactions ... --warehouse <dir> --out <dir>/report`` as a
  subprocess (``bench_build.run_measured``): wall, the steps from the run's own announcements (build, checks,
  report), peak RSS of the whole process tree (psutil, every 50 ms: the dbt process and its JVM, the segfit
  process and, on Spark, the checks' JVM), CPU seconds of the tree (``wait4``) and the load average before;
* dbt's ``run_results.json`` of the build: model sum, test sum, dbt's elapsed time;
* on Spark, Spark's own event logs (``spark.eventLog.enabled`` through ``PYSPARK_SUBMIT_ARGS``: one log for
  the dbt build's session, one for the checks' session): application start relative to the step, jobs and
  the union of their intervals, task run and CPU time, shuffle bytes written and read, shuffle write and
  fetch-wait time, GC time. The time of a step outside any Spark job is JVM start, dbt's parse and
  compile, and per-statement overhead (planning, catalog, commit);
* once per invocation, ``--probe``: in a fresh process, the JVM start (``SparkSession.getOrCreate`` with
  the profile's settings) and the latency of a trivial ``create table ... as select`` (what dbt issues per
  model) and of a trivial query, medians of 10.

Writes JSON (default ``benchmarks/results/spark_lane.json``) after every run and prints a Markdown table.

Usage::

    .venv/bin/python benchmarks/bench_spark.py --sizes 20000:400000            # smoke run
    nice -n 5 .venv/bin/python benchmarks/bench_spark.py --sizes 200000:4000000 --out benchmarks/results/spark_lane.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_build as bb  # noqa: E402 - the sibling script's measuring helpers

DEFAULT_OUT = bb.BENCH_DIR / "results" / "spark_lane.json"
DEFAULT_SIZES = "200000:4000000"
SPARK_SETTINGS = ("SEGFIT_SPARK_MASTER", "SEGFIT_SPARK_DRIVER_MEMORY", "SEGFIT_SPARK_SHUFFLE_PARTITIONS")
SESSION_STARTED = re.compile(r"Spark session for the checks started in ([0-9.]+) s")


# CPU of the whole tree: a JVM started by pyspark is not waited for by its parent (it exits when the Python side
# closes its pipe), so wait4's rusage misses it; bench_build's tree poll keeps each process's last polled
# user + sys time, and their sum (``cpu_tree_polled_s``) includes the JVMs (a process living < 50 ms is missed).


# --------------------------------------------------------------------------------------------------------
# Spark's event logs
# --------------------------------------------------------------------------------------------------------


def _event_lines(path: Path):
    """The lines of one application's event log: a file, or (Spark 4's rolling logs) a directory of files."""
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")) if path.is_dir() else [path]
    for file in files:
        if file.suffix == ".zstd":  # Spark 4 compresses event logs with zstd by default
            text = subprocess.run(["zstd", "-dc", str(file)], check=True, capture_output=True).stdout  # noqa: S603, S607
            yield from text.decode("utf-8", errors="replace").splitlines()
            continue
        with open(file, encoding="utf-8", errors="replace") as lines:
            yield from lines


def parse_event_log(path: Path) -> dict:
    """One application's event log: its start, jobs, task and shuffle totals (times in s, bytes)."""
    app_start = app_end = None
    jobs: dict[int, list[float]] = {}
    tasks = 0
    totals = {"task_run_s": 0.0, "task_cpu_s": 0.0, "gc_s": 0.0, "shuffle_write_bytes": 0,
              "shuffle_write_s": 0.0, "shuffle_read_bytes": 0, "shuffle_fetch_wait_s": 0.0,
              "input_bytes": 0, "output_bytes": 0, "spill_disk_bytes": 0}
    if True:
        for line in _event_lines(path):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            kind = event.get("Event")
            if kind == "SparkListenerApplicationStart":
                app_start = event["Timestamp"] / 1000
            elif kind == "SparkListenerApplicationEnd":
                app_end = event["Timestamp"] / 1000
            elif kind == "SparkListenerJobStart":
                jobs[event["Job ID"]] = [event["Submission Time"] / 1000, None]
            elif kind == "SparkListenerJobEnd" and event["Job ID"] in jobs:
                jobs[event["Job ID"]][1] = event["Completion Time"] / 1000
            elif kind == "SparkListenerTaskEnd":
                metrics = event.get("Task Metrics") or {}
                tasks += 1
                totals["task_run_s"] += metrics.get("Executor Run Time", 0) / 1000
                totals["task_cpu_s"] += metrics.get("Executor CPU Time", 0) / 1e9
                totals["gc_s"] += metrics.get("JVM GC Time", 0) / 1000
                write = metrics.get("Shuffle Write Metrics") or {}
                totals["shuffle_write_bytes"] += write.get("Shuffle Bytes Written", 0)
                totals["shuffle_write_s"] += write.get("Shuffle Write Time", 0) / 1e9
                read = metrics.get("Shuffle Read Metrics") or {}
                totals["shuffle_read_bytes"] += read.get("Local Bytes Read", 0) + read.get("Remote Bytes Read", 0)
                totals["shuffle_fetch_wait_s"] += read.get("Fetch Wait Time", 0) / 1000
                totals["input_bytes"] += (metrics.get("Input Metrics") or {}).get("Bytes Read", 0)
                totals["output_bytes"] += (metrics.get("Output Metrics") or {}).get("Bytes Written", 0)
                totals["spill_disk_bytes"] += metrics.get("Disk Bytes Spilled", 0)
    intervals = [(a, b) for a, b in jobs.values() if b is not None]
    return {
        "log": path.name,
        "app_start_epoch": app_start,
        "app_end_epoch": app_end,
        "jobs": len(jobs),
        "tasks": tasks,
        "job_union_s": bb.union_seconds(intervals),
        "first_job_epoch": min((a for a, _ in intervals), default=None),
        "last_job_end_epoch": max((b for _, b in intervals), default=None),
        **totals,
    }


# --------------------------------------------------------------------------------------------------------
# the probe: JVM start and per-statement overhead, in a fresh process
# --------------------------------------------------------------------------------------------------------


def probe_child() -> int:
    from python_analysis.spark_engine import spark_session

    with tempfile.TemporaryDirectory(prefix="segfit-spark-probe-") as folder:
        os.environ.setdefault("SEGFIT_SPARK_MASTER", "local[2]")
        started = time.perf_counter()
        spark = spark_session()
        jvm_s = time.perf_counter() - started
        spark.sql("select 1").collect()  # the first query pays for class loading
        ctas, query = [], []
        for i in range(10):
            location = Path(folder, f"t{i}").as_posix()
            t0 = time.perf_counter()
            spark.sql(f"create table probe_{i} using parquet location '{location}' as select {i} as x, 'a' as y")
            ctas.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            spark.sql(f"select count(*), max(x) from probe_{i}").collect()
            query.append(time.perf_counter() - t0)
        spark.stop()
    print(json.dumps({"jvm_start_s": jvm_s, "tiny_ctas_median_s": statistics.median(ctas),
                      "tiny_query_median_s": statistics.median(query)}))
    return 0


def run_probe(workdir: Path) -> dict:
    log_path = workdir / "probe.log"
    measured = bb.run_measured([sys.executable, str(Path(__file__).resolve()), "--probe-child"], env=None,
                               log_path=log_path, cwd=bb.PROJECT_DIR)
    text = log_path.read_text()
    if measured["exit_code"] != 0:
        raise RuntimeError(f"probe failed:\n{text[-3000:]}")
    found = json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("{")))
    found.update({"peak_tree_rss_bytes": measured["peak_tree_rss_bytes"],
                  "cpu_s": measured["cpu_user_s"] + measured["cpu_sys_s"],
                  "cpu_tree_polled_s": measured["cpu_tree_polled_s"], "wall_s": measured["wall_s"]})
    return found


# --------------------------------------------------------------------------------------------------------
# one `segfit run`
# --------------------------------------------------------------------------------------------------------


def run_engine(engine: str, paths: dict[str, Path], workdir: Path, label: str) -> dict:
    run_dir = workdir / f"{engine}-{label}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    warehouse = run_dir / ("segfit.duckdb" if engine == "duckdb" else "warehouse")
    env = dict(os.environ)
    target = run_dir / "dbt_target"
    events = run_dir / "eventlog"
    if engine == "duckdb":
        env["DBT_TARGET_PATH"] = str(target)
        env["DBT_LOG_PATH"] = str(target / "logs")
    else:
        events.mkdir()
        env["PYSPARK_SUBMIT_ARGS"] = (f"--conf spark.eventLog.enabled=true --conf spark.eventLog.dir=file://{events} "
                                      "--conf spark.eventLog.compress=false "
                                      "pyspark-shell")
    segfit = Path(sys.executable).with_name("segfit")
    command = [str(segfit), "run", "--engine", engine, "--customers", str(paths["customers"]),
               "--transactions", str(paths["transactions"]), "--warehouse", str(warehouse),
               "--out", str(run_dir / "report")]
    log_path = workdir / f"run-{engine}-{label}.log"
    load_before = os.getloadavg()
    started_epoch = time.time()
    measured = bb.run_measured(command, env=env, log_path=log_path, cwd=bb.PROJECT_DIR)
    measured.update(engine=engine, command=" ".join(command), loadavg_before=load_before,
                    loadavg_after=os.getloadavg(), started_epoch=started_epoch)
    if measured["exit_code"] != 0:
        raise RuntimeError(f"segfit run --engine {engine} failed (exit {measured['exit_code']}); log {log_path}:\n"
                           + log_path.read_text()[-4000:])
    measured.update(bb.step_times(measured["marks"], measured["wall_s"]))
    results = (target if engine == "duckdb" else warehouse.resolve().parent / "dbt_target") / "run_results.json"
    summary = bb.summarize_run_results(results)
    measured.update({k: summary[k] for k in ("model_sum_s", "model_span_s", "test_s", "dbt_elapsed_s")})
    measured["models"] = len(summary["models"])
    if engine == "spark":
        measured["spark"] = spark_breakdown(measured, events, log_path.read_text())
    return measured


def spark_breakdown(measured: dict, events: Path, text: str) -> dict:
    """Where the Spark run's time goes: the dbt build's session and the checks' session, from their logs."""
    logs = sorted((parse_event_log(p) for p in events.iterdir() if not p.name.startswith(".")),
                  key=lambda log: log["app_start_epoch"] or 0)
    marks = {line: t for t, line in measured["marks"]}
    build_at = next((t for line, t in marks.items() if "[1/3] build" in line), 0.0)
    checks_at = next((t for line, t in marks.items() if "[2/3] checks" in line), None)
    out: dict = {"applications": []}
    for log in logs:
        role = "build (dbt)" if checks_at is None or (log["app_start_epoch"] or 0) - measured["started_epoch"] < checks_at \
            else "checks"
        start = (log["app_start_epoch"] or 0) - measured["started_epoch"]
        step_start = build_at if role == "build (dbt)" else checks_at
        log.update(role=role, app_start_after_step_start_s=start - step_start,
                   first_job_after_app_start_s=(log["first_job_epoch"] - log["app_start_epoch"])
                   if log["first_job_epoch"] and log["app_start_epoch"] else None)
        out["applications"].append(log)
    found = SESSION_STARTED.search(text)
    out["checks_session_start_s"] = float(found.group(1)) if found else None
    return out


# --------------------------------------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(runs: list[dict], probe: dict | None) -> str:
    lines = ["| size | engine | wall s | build s | checks s | report s | dbt models (sum s) | dbt tests s "
             "| peak RSS tree GB | CPU s, wait4 (JVMs not included) | CPU s, polled tree (JVMs included) "
             "| load 1m before→after |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        lines.append(f"| {r['size']} | {r['engine']} | {fmt(r['wall_s'])} | {fmt(r['build_step_s'])} "
                     f"| {fmt(r['checks_step_s'])} | {fmt(r['report_step_s'])} | {r['models']} ({fmt(r['model_sum_s'])}) "
                     f"| {fmt(r['test_s'])} | {bb.gb(r['peak_tree_rss_bytes'])} "
                     f"| {fmt(r['cpu_user_s'] + r['cpu_sys_s'])} | {fmt(r.get('cpu_tree_polled_s'))} "
                     f"| {r['loadavg_before'][0]:.1f}→{r['loadavg_after'][0]:.1f} |")
    spark_runs = [r for r in runs if r.get("spark")]
    if spark_runs:
        lines += ["", "| size | Spark session | starts after step start s | jobs | tasks | job union s | step s "
                  "| outside jobs s | task run s | task CPU s | GC s | shuffle written MB | shuffle write s "
                  "| shuffle read MB | fetch wait s | spill MB |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in spark_runs:
            for app in r["spark"]["applications"]:
                step = r["build_step_s"] if app["role"].startswith("build") else r["checks_step_s"]
                lines.append(
                    f"| {r['size']} | {app['role']} | {fmt(app['app_start_after_step_start_s'])} | {app['jobs']} "
                    f"| {app['tasks']} | {fmt(app['job_union_s'])} | {fmt(step)} "
                    f"| {fmt(step - app['job_union_s'] if step is not None else None)} | {fmt(app['task_run_s'])} "
                    f"| {fmt(app['task_cpu_s'])} | {fmt(app['gc_s'])} | {app['shuffle_write_bytes'] / 1e6:.1f} "
                    f"| {fmt(app['shuffle_write_s'])} | {app['shuffle_read_bytes'] / 1e6:.1f} "
                    f"| {fmt(app['shuffle_fetch_wait_s'])} | {app['spill_disk_bytes'] / 1e6:.1f} |")
    if probe:
        lines += ["", f"Probe (fresh process): JVM start (SparkSession.getOrCreate) {probe['jvm_start_s']:.1f} s; "
                  f"a trivial `create table ... as select` {probe['tiny_ctas_median_s']:.2f} s and a trivial query "
                  f"{probe['tiny_query_median_s']:.2f} s (medians of 10)."]
    return "\n".join(lines)


def write(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(result["markdown"] + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"N:M[,N:M...] (default {DEFAULT_SIZES})")
    parser.add_argument("--engines", default="duckdb,spark", help="comma list of duckdb, spark (in this order)")
    parser.add_argument("--order", default="time", choices=("time", "customer"))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--data-dir", type=Path, default=bb.DATA_DIR)
    parser.add_argument("--no-probe", action="store_true", help="skip the JVM-start / per-statement probe")
    parser.add_argument("--keep", action="store_true", help="keep the warehouses, reports and event logs")
    parser.add_argument("--probe-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_child:
        return probe_child()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or set(engines) - {"duckdb", "spark"}:
        raise SystemExit("--engines: a comma list of duckdb, spark")
    sys.path.insert(0, str(bb.PROJECT_DIR))
    from python_analysis.demo_data import DEFAULT_SEED

    result: dict = {"machine": bb.machine_facts(), "engines": engines, "order": args.order, "runs": [],
                    # the profile's Spark settings from the environment (profiles/profiles.yml's defaults apply
                    # to the ones not set)
                    "spark_settings": {k: os.environ[k] for k in SPARK_SETTINGS if k in os.environ},
                    "probe": None, "markdown": ""}
    workdir = Path(tempfile.mkdtemp(prefix="segfit-bench-spark-"))
    bb.log(f"work directory {workdir}")
    try:
        if "spark" in engines and not args.no_probe:
            result["probe"] = run_probe(workdir)
            bb.log(f"probe: {result['probe']}")
        for n, m in bb.parse_sizes(args.sizes):
            paths = bb.ensure_data(n, m, DEFAULT_SEED, args.data_dir, args.order)
            for run in range(args.runs):
                for engine in engines:
                    bb.log(f"{n}:{m} {engine} run {run + 1}")
                    measured = run_engine(engine, paths, workdir, f"{n}_{m}_{run}")
                    measured["size"] = f"{n:,} / {m:,}"
                    result["runs"].append(measured)
                    bb.log(f"{engine}: wall {measured['wall_s']:.1f} s, CPU (polled tree) "
                           f"{fmt(measured['cpu_tree_polled_s'])} s, peak tree RSS "
                           f"{bb.gb(measured['peak_tree_rss_bytes'])} GB")
                    result["markdown"] = markdown(result["runs"], result["probe"])
                    result["machine"]["loadavg_at_end"] = os.getloadavg()
                    write(args.out, result)
    finally:
        if args.keep:
            bb.log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(result["markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
