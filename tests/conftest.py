"""Shared fixtures: real dbt builds into real DuckDB files, once per test session."""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

import pytest

from python_analysis import pipeline, warehouse

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

PROJECT = warehouse.PROJECT_DIR
SEEDS = PROJECT / "seeds"
SHARED_EXTRACT = PROJECT.parent / "shared" / "data" / "netsuite2_customer_analytics.csv"


class WarehouseFactory:
    """Builds each distinct configuration once per test run and hands out the published file.

    Under xdist the workers share one folder (beside their own temp folders, so it lives as long as the
    run): the first worker to ask for a configuration builds it while holding that configuration's file
    lock; a worker that asks meanwhile waits on the lock and then reads the same file instead of building
    it again. Only a finished build is marked done, so a failed build is retried (and fails) in the next
    worker that asks, as it did when each worker built for itself. Tests only read these builds; a test
    that writes into a warehouse copies it first (``builds.publish_copy``, ``shutil.copyfile``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache: dict[pipeline.BuildOptions, Path] = {}

    def __call__(self, options: pipeline.BuildOptions | None = None) -> Path:
        options = options or pipeline.BuildOptions()
        if options not in self.cache:
            # the options' repr names every field (input paths, grain, threshold, vars, ...): equal options,
            # same folder; inputs written under a worker's own temp folder never collide with another's
            folder = self.root / hashlib.sha256(repr(options).encode()).hexdigest()[:20]
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / "segfit.duckdb"
            with open(folder / "build.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not (folder / "built").exists():
                    pipeline.build(options, target)
                    (folder / "built").write_text(repr(options))
            self.cache[options] = target
        return self.cache[options]


@pytest.fixture(scope="session")
def build_warehouse(tmp_path_factory) -> WarehouseFactory:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # pytest-of-<user>/pytest-<N>/: this run's folder, shared by its workers (popen-gw0, popen-gw1, ...)
        root = tmp_path_factory.getbasetemp().parent / "shared-warehouses"
        root.mkdir(exist_ok=True)
    else:
        root = tmp_path_factory.mktemp("warehouses")
    return WarehouseFactory(root)


@pytest.fixture(scope="session")
def demo_warehouse(build_warehouse) -> Path:
    """The demo, transactions variant, grain all: what `make run` builds."""
    return build_warehouse()


@pytest.fixture(scope="session")
def demo_marts(demo_warehouse):
    return warehouse.read_marts(demo_warehouse)


# The test files that take longest in a whole run (`pytest --durations`, summed per file), longest first.
# `make test` hands whole files to its two xdist workers (``--dist loadfile``) in collection order
# (``--no-loadscope-reorder``: not by test count), so the long files start first and the short ones fill
# in at the end, and the two workers finish together instead of one waiting for the other's last long
# file. Only the order changes; a file not listed keeps its place after the listed ones.
LONGEST_FIRST = (
    "tests/integration/test_bad_inputs.py",
    "tests/integration/test_checks.py",
    "tests/integration/test_incremental.py",
    "tests/integration/test_oracle.py",
    "tests/integration/test_end_to_end.py",
    "tests/integration/test_dbt_environments.py",
    "tests/integration/test_publishing.py",
    "tests/integration/test_concurrent_serving.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    """Layers: tests/unit are pure and fast (synthetic frames, no warehouse, at most a few model fits; all of
    it under 60 s); every test under tests/integration is marked ``slow``: it builds or reads real
    warehouses, or proves a statistical property by fitting many times over (model fits, null and power
    simulations, whole reports built twice). `make test-fast` runs tests/unit only; `make test` runs both."""
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.slow)
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep their order
