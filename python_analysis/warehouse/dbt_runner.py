"""Running dbt on a warehouse file: its executable, its environment (what one build knows) and its output, streamed to a logger."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from .paths import PROJECT_DIR

dbt_log = logging.getLogger(__name__ + ".dbt")  # dbt's own output, line by line
DBT_TARGET = "prod"  # profiles/profiles.yml: the CLI's builds; plain dbt defaults to `dev`



def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


# Set by the CLI for one build only (the input paths, the build history comes from, the inputs' sizes and
# hashes); never inherited from the caller's environment.
BUILD_ENVIRONMENT = ("SEGFIT_CUSTOMERS_PATH", "SEGFIT_TRANSACTIONS_PATH", "SEGFIT_PREVIOUS_BUILD",
                     "SEGFIT_INPUT_FINGERPRINTS", "SEGFIT_PARSE_INPUTS", "SEGFIT_BUILD_GATE")


def dbt_environment(database_path: Path, build: Mapping[str, str] | None = None) -> dict[str, str]:
    """dbt's environment: the file to build, plus what this build knows (``BUILD_ENVIRONMENT``)."""
    env = {k: v for k, v in os.environ.items() if k not in BUILD_ENVIRONMENT}
    unknown = set(build or {}) - set(BUILD_ENVIRONMENT)
    if unknown:
        raise ValueError(f"not a build environment variable: {sorted(unknown)}")
    env.update(build or {})
    env.update(
        {
            "SEGFIT_DUCKDB_PATH": str(database_path),
            "DO_NOT_TRACK": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_PROFILES_DIR": str(PROJECT_DIR / "profiles"),
            "DBT_PROJECT_DIR": str(PROJECT_DIR),
        }
    )
    # dbt's target/ and logs/ belong to this build (its manifest describes this file), so two builds, or a
    # build and a plain `dbt` command in the checkout, never overwrite each other's artifacts. A caller's own
    # DBT_TARGET_PATH / DBT_LOG_PATH (the benchmark's) wins.
    env.setdefault("DBT_TARGET_PATH", str(artifacts_dir(database_path)))
    env.setdefault("DBT_LOG_PATH", str(Path(env["DBT_TARGET_PATH"]) / "logs"))
    return env


def artifacts_dir(database_path: Path) -> Path:
    """Where dbt writes a build's artifacts (manifest, run results, its saved parse): beside the file."""
    return database_path.parent / "dbt_target"


PARTIAL_PARSE = "partial_parse.msgpack"


def saved_parse_cache() -> Path:
    """The saved parse of the last build made from this checkout, whatever its warehouse: where a build with
    no previous build of its own (a new warehouse) starts from. It lives in the project's git-ignored
    ``target/``, beside plain dbt's own saved parse."""
    return PROJECT_DIR / "target" / "segfit_saved_parse" / PARTIAL_PARSE


def seed_partial_parse(previous: Path | None, database_path: Path) -> Path | None:
    """Start a build with a saved parse, so dbt re-parses only what changed since: the previous build's, else
    the last build's from this checkout (``saved_parse_cache``).

    dbt checks it before use: its own version, the vars, the profile (the same for every build of a
    warehouse name: ``run_dbt``), the project's env vars and every file's hash; anything else is a full
    parse, as without it. A caller's own DBT_TARGET_PATH keeps its own saved parse; ``DBT_PARTIAL_PARSE=false``
    turns partial parsing off. Returns the saved parse used, if any."""
    if "DBT_TARGET_PATH" in os.environ:
        return None
    candidates = ([artifacts_dir(previous) / PARTIAL_PARSE] if previous is not None else []) + [saved_parse_cache()]
    saved = next((path for path in candidates if path.is_file()), None)
    if saved is None:
        return None
    target = artifacts_dir(database_path)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(saved, target / PARTIAL_PARSE)
    return saved


def keep_saved_parse(database_path: Path) -> None:
    """After a successful build, its saved parse becomes the one new warehouses start from; written whole
    (a temporary file renamed into place), so a concurrent build reads the old parse or the new one. Best
    effort: a read-only checkout only loses the head start."""
    saved = artifacts_dir(database_path) / PARTIAL_PARSE
    if "DBT_TARGET_PATH" in os.environ or not saved.is_file():
        return
    cache = saved_parse_cache()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        shutil.copyfile(saved, partial)
        os.replace(partial, cache)
    except OSError as error:
        logging.getLogger(__name__).debug("saved parse not kept for new warehouses: %s", error)


def run_dbt(args: list[str], database_path: Path, *, build: Mapping[str, str] | None = None) -> int:
    """Run one dbt command against ``database_path``, streaming its output to the ``dbt`` logger."""
    command = [dbt_executable(), *args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR / "profiles"),
               "--target", DBT_TARGET]
    # dbt runs in the build's directory and opens the file by its name: the profile (whose connection
    # details, the DuckDB path among them, key dbt's saved parse) is then the same for every build of a
    # warehouse name, wherever it lives, so a saved parse from another directory stays valid (``seed_partial_parse``).
    # Everything else dbt reads has an absolute path: the project, the profile, the inputs, the previous build.
    env = dbt_environment(database_path, build)
    env["SEGFIT_DUCKDB_PATH"] = database_path.name
    process = subprocess.Popen(  # noqa: S603 - fixed executable, validated arguments
        command,
        cwd=database_path.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            dbt_log.info("%s", line.rstrip())
        return process.wait()
    except BaseException:
        # Ctrl-C, SIGTERM or an error here: never leave dbt running on its own
        stop_process(process)
        raise


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a child politely, then for certain."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
