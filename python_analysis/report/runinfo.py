"""Run metadata: what the report was built from (inputs with size and SHA-256, grain, threshold and mode, from
marts.build_metadata), by which code (segfit version, the project's git revision) and when (start and end)."""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata

import pandas as pd

from .. import __version__
from ..analysis import text_column
from ..warehouse import PROJECT_DIR
from . import formats


def now_utc() -> str:
    """Now (UTC, seconds), or ``$SOURCE_DATE_EPOCH`` when set, so a reproducible build can pin it."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None and epoch.strip().lstrip("-").isdigit():
        return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def segfit_version() -> str:
    try:
        return metadata.version("segfit")
    except metadata.PackageNotFoundError:
        return __version__


def git_revision() -> str:
    """The project's commit, with ``-dirty`` when tracked files differ from it; 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True,  # noqa: S607
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_DIR,  # noqa: S607
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


@dataclass(frozen=True)
class InputFile:
    source: str
    label: str
    name: str | None
    size_bytes: int | None
    sha256: str | None


@dataclass(frozen=True)
class RunInfo:
    grain: str
    threshold: float | None = None
    threshold_mode: str | None = None
    inputs: tuple[InputFile, ...] = ()
    built_at: str | None = None
    dbt_version: str | None = None
    segfit_version: str = field(default_factory=segfit_version)
    git_revision: str = field(default_factory=git_revision)
    started_at: str = field(default_factory=now_utc)
    finished_at: str | None = None

    @classmethod
    def from_marts(cls, marts: Mapping[str, pd.DataFrame], *, grain: str, started_at: str | None = None) -> RunInfo:
        """Read marts.build_metadata (one row per input source); without it, the threshold from the fit mart."""
        meta = marts.get("build_metadata")
        fit = marts.get("customer_segment_fit")
        kwargs: dict[str, object] = {"grain": grain}
        if started_at:
            kwargs["started_at"] = started_at
        if meta is not None and len(meta):
            meta = meta.sort_values("source", kind="mergesort")
            first = meta.iloc[0]
            kwargs.update(grain=str(first.get("customer_grain") or grain),
                          threshold=_number(first.get("anomaly_threshold")),
                          threshold_mode=_text(first.get("anomaly_threshold_mode")),
                          built_at=_text(first.get("built_at")), dbt_version=_text(first.get("dbt_version")),
                          inputs=tuple(_input(row) for _, row in meta.iterrows()))
        elif fit is not None and len(fit) and "anomaly_threshold" in fit.columns:
            kwargs.update(threshold=_number(fit["anomaly_threshold"].iloc[0]),
                          threshold_mode=str(text_column(fit, "anomaly_threshold_mode").iloc[0]))
        return cls(**kwargs)  # type: ignore[arg-type]

    def finished(self, at: str | None = None) -> RunInfo:
        return replace(self, finished_at=at or now_utc())

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def line(self) -> str:
        """One line for the report header."""
        inputs = "; ".join(_describe(i) for i in self.inputs) or "inputs not recorded"
        threshold = f"{formats.num(self.threshold)} ({self.threshold_mode})" if self.threshold is not None else "n/a"
        return (f"Inputs: {inputs}. Grain {self.grain}; anomaly threshold {threshold}. Built {self.built_at or 'n/a'} "
                f"(dbt {self.dbt_version or 'n/a'}); report by segfit {self.segfit_version} at git "
                f"{self.git_revision[:12] + ('-dirty' if self.git_revision.endswith('-dirty') else '')}, "
                f"started {self.started_at}, finished {self.finished_at or 'n/a'}.")


def _describe(i: InputFile) -> str:
    if i.name is None:
        return f"{i.source}: {i.label}"
    size = formats.count(i.size_bytes)
    return f"{i.source}: {i.name} ({size} bytes, SHA-256 {i.sha256})"


def _number(value: object) -> float | None:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _text(value: object) -> str | None:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _input(row: pd.Series) -> InputFile:
    size = _number(row.get("file_size_bytes"))
    return InputFile(source=str(row.get("source")), label=_text(row.get("input_label")) or "",
                     name=_text(row.get("file_name")), size_bytes=int(size) if size is not None else None,
                     sha256=_text(row.get("file_sha256")))
