"""Helpers for tests that publish warehouses they already built."""

from __future__ import annotations

import shutil
from pathlib import Path

from python_analysis import publishing


def publish_copy(source: Path, published: Path, **kwargs) -> Path:
    """Publish a copy of an already built warehouse file at ``published`` (a real publish, no dbt run);
    return the build file readers now get."""
    slot = publishing.new_slot(published)
    shutil.copyfile(source, slot.target)
    publishing.publish(published, slot, **kwargs)
    return slot.target
