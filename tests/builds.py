"""Helpers for tests: copies of the project, and publishing warehouses they already built."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from python_analysis import warehouse
from python_analysis.warehouse import publishing


def copy_tracked(root: Path) -> Path:
    """A copy of the project's git-tracked files at ``root``: what a fresh clone holds (no target/, no .venv)."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=warehouse.PROJECT_DIR, capture_output=True,
                             check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        source = warehouse.PROJECT_DIR / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    return root


def publish_copy(source: Path, published: Path, **kwargs) -> Path:
    """Publish a copy of an already built warehouse file at ``published`` (a real publish, no dbt run);
    return the build file readers now get."""
    slot = publishing.new_slot(published)
    shutil.copyfile(source, slot.target)
    publishing.publish(published, slot, **kwargs)
    return slot.target
