"""What a check run takes and returns: its configuration, failed expectations, the report, and its own error."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .contract import THRESHOLD_MODES


class ChecksError(RuntimeError):
    """The check run itself failed (GX raised, or reported a raised exception): not a data finding."""


@dataclass(frozen=True)
class CheckConfig:
    anomaly_threshold: float = 0.15
    anomaly_threshold_mode: str = "absolute"
    anomaly_rate_band: tuple[float, float] = (0.02, 0.30)
    max_offending_keys: int = 5

    def __post_init__(self) -> None:
        if self.anomaly_threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"anomaly_threshold_mode must be one of {THRESHOLD_MODES}")
        low, high = self.anomaly_rate_band
        if not 0 <= low <= high <= 1:
            raise ValueError("anomaly_rate_band must be (low, high) with 0 <= low <= high <= 1")
        if self.max_offending_keys < 0:
            raise ValueError("max_offending_keys must be >= 0")


@dataclass(frozen=True)
class FailedExpectation:
    table: str
    expectation_type: str
    column: str | None
    severity: str
    offending: list[str] = field(default_factory=list)
    unexpected_count: int | None = None

    def describe(self) -> str:
        target = f"({self.column})" if self.column else ""
        text = f"{self.severity.upper()} {self.table}: {self.expectation_type}{target}"
        if self.unexpected_count is not None:
            text += f" - {self.unexpected_count} unexpected"
        if self.offending:
            text += ": " + "; ".join(self.offending)
        return text


@dataclass
class CheckReport:
    errors: list[FailedExpectation]
    warnings: list[FailedExpectation]
    evaluated: int
    data_docs_index: Path | None = None
    skipped: int = 0
    # tables validated in SQL over every row (not in Data Docs): {table: rows}
    validated_in_sql: dict[str, int] = field(default_factory=dict)
    # what GX's validation result says each table's batch was ({table: "SparkDataFrame"}), filled by
    # run_checks_spark (GX's Spark datasource)
    gx_batches: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        lines = [
            f"data-quality checks: {self.evaluated} expectations evaluated, {self.skipped} skipped, "
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        ]
        lines += [f"- {failed.describe()}" for failed in self.errors + self.warnings]
        if self.validated_in_sql:
            lines.append("validated in SQL over every row (not in Data Docs): " + ", ".join(
                f"{table} ({rows:,} rows)" for table, rows in self.validated_in_sql.items()))
        if self.data_docs_index is not None:
            lines.append(f"Data Docs: {self.data_docs_index}")
        return "\n".join(lines)
