"""The marts' columns and types, from dbt's contracts: the one source of column names for the Python layer.

A build's own manifest (``<build dir>/dbt_target/manifest.json``, written by the build that made the file)
describes exactly that warehouse; without it (plain frames in tests, an older build), the model YAML in
``models/marts/`` is read. ``require_columns`` fails loudly when a mart lacks a contracted column, instead of
letting a renamed column turn silently into an empty one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import SegfitError

PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str | None


Contracts = dict[str, tuple[Column, ...]]


def from_manifest(manifest: Path) -> Contracts:
    """Every model's columns in contract order, from a dbt ``manifest.json``."""
    nodes = json.loads(manifest.read_text(encoding="utf-8")).get("nodes", {})
    out: Contracts = {}
    for node in nodes.values():
        if node.get("resource_type") != "model":
            continue
        columns = node.get("columns") or {}
        out[node["name"]] = tuple(Column(c.get("name", k), c.get("data_type")) for k, c in columns.items())
    return out


def from_yaml(project_dir: Path = PROJECT_DIR) -> Contracts:
    """Every mart's columns in contract order, from the model YAML under ``models/marts``."""
    import yaml

    out: Contracts = {}
    for path in sorted((project_dir / "models" / "marts").glob("*.yml")):
        for model in (yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}).get("models") or []:
            out[model["name"]] = tuple(Column(c["name"], c.get("data_type")) for c in model.get("columns") or [])
    return out


def for_build(database_path: Path | None = None, project_dir: Path = PROJECT_DIR) -> Contracts:
    """The contracts of the build that wrote ``database_path`` (its manifest), else the project's YAML."""
    if database_path is not None:
        manifest = Path(database_path).resolve().parent / "dbt_target" / "manifest.json"
        if manifest.is_file():
            return from_manifest(manifest)
    return from_yaml(project_dir)


def column_names(contracts: Contracts, mart: str) -> tuple[str, ...]:
    if mart not in contracts:
        raise SegfitError(f"no dbt contract for mart {mart}")
    return tuple(c.name for c in contracts[mart])


def require_columns(marts: Mapping[str, pd.DataFrame], contracts: Contracts) -> None:
    """Every contracted column of every given mart is present; else one error naming each missing column."""
    problems = []
    for name, frame in marts.items():
        if name not in contracts:
            continue
        missing = [c for c in column_names(contracts, name) if c not in frame.columns]
        if missing:
            problems.append(f"marts.{name} lacks {', '.join(missing)}")
    if problems:
        raise SegfitError("the warehouse does not match its dbt contracts: " + "; ".join(problems)
                          + " (rebuild it with this version of segfit)")
