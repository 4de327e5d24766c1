"""Shared fixtures: real dbt builds into real DuckDB files, once per test session."""

from __future__ import annotations

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
    """Builds each distinct configuration once per session and hands out the published file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache: dict[pipeline.BuildOptions, Path] = {}

    def __call__(self, options: pipeline.BuildOptions | None = None) -> Path:
        options = options or pipeline.BuildOptions()
        if options not in self.cache:
            target = self.root / f"w{len(self.cache)}" / "segfit.duckdb"
            pipeline.build(options, target)
            self.cache[options] = target
        return self.cache[options]


@pytest.fixture(scope="session")
def build_warehouse(tmp_path_factory) -> WarehouseFactory:
    return WarehouseFactory(tmp_path_factory.mktemp("warehouses"))


@pytest.fixture(scope="session")
def demo_warehouse(build_warehouse) -> Path:
    """The demo, transactions variant, grain all: what `make run` builds."""
    return build_warehouse()


@pytest.fixture(scope="session")
def demo_marts(demo_warehouse):
    return warehouse.read_marts(demo_warehouse)


def pytest_collection_modifyitems(config, items) -> None:
    """Layers: tests/unit are pure and fast (synthetic frames, no warehouse, at most a few model fits; all of
    it under 60 s); every test under tests/integration is marked ``slow``: it builds or reads real
    warehouses, or proves a statistical property by fitting many times over (model fits, null and power
    simulations, whole reports built twice). `make test-fast` runs tests/unit only; `make test` runs both."""
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.slow)
