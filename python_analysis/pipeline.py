"""The steps segfit runs: build (dbt), check (great-expectations), report. The CLI only wires these."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from python_analysis import inputs, warehouse
from python_analysis.errors import SegfitError

Echo = Callable[[str], None]

# dbt renders Jinja in --vars values: a value with a Jinja marker never reaches dbt
_JINJA = ("{{", "{%", "{#")
# the input paths reach dbt as environment variables, never as vars (see macros/segfit_vars.sql)
PATH_ENV = {"customers": "SEGFIT_CUSTOMERS_PATH", "transactions": "SEGFIT_TRANSACTIONS_PATH"}


@dataclass(frozen=True)
class BuildOptions:
    """Everything that decides what the warehouse contains. Validated on construction."""

    customers: Path | None = None
    transactions: Path | None = None
    grain: str = "all"
    threshold: float = 0.15
    threshold_mode: str = "absolute"
    demo_variant: str = "transactions"
    extra_vars: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.grain not in ("all", "latest"):
            raise SegfitError(f"--grain must be 'all' or 'latest', got {self.grain!r}")
        if self.threshold_mode not in ("absolute", "relative"):
            raise SegfitError(f"--threshold-mode must be 'absolute' or 'relative', got {self.threshold_mode!r}")
        if not isinstance(self.threshold, int | float) or math.isnan(self.threshold) or self.threshold < 0:
            raise SegfitError(f"--threshold must be a number >= 0, got {self.threshold!r}")
        if self.demo_variant not in ("transactions", "precomputed"):
            raise SegfitError(f"demo variant must be 'transactions' or 'precomputed', got {self.demo_variant!r}")
        if self.transactions is not None and self.customers is None:
            raise SegfitError("--transactions needs --customers (the demo brings its own transactions)")
        for key, value in self.extra_vars:
            if not key.isidentifier():
                raise SegfitError(f"--var name {key!r} is not a valid name")
            if key in ("customers_path", "transactions_path"):
                raise SegfitError(f"--var {key} is not accepted: use --{key.removesuffix('_path')}")
            if any(marker in value for marker in _JINJA):
                raise SegfitError(f"--var {key} contains a Jinja marker ({{{{, {{% or {{#}}), which segfit does not "
                                  f"allow in a var (dbt would run it as a template): {value!r}")
            inputs.validate_path_text(value, f"--var {key}")

    def dbt_vars(self) -> dict[str, object]:
        values: dict[str, object] = {
            "customer_grain": self.grain,
            "anomaly_threshold": self.threshold,
            "anomaly_threshold_mode": self.threshold_mode,
            "demo_variant": self.demo_variant,
        }
        values.update(dict(self.extra_vars))
        return values

    def dbt_env(self) -> dict[str, str]:
        """The input paths for dbt, as environment variables: env_var() returns them as they are, while
        dbt would render a var value as Jinja (a file named ``{{7*7}}.csv`` would become ``49.csv``)."""
        return {
            PATH_ENV["customers"]: str(self.customers) if self.customers else "",
            PATH_ENV["transactions"]: str(self.transactions) if self.transactions else "",
        }

    def describe(self) -> str:
        if self.customers is None:
            source = f"demo seeds ({self.demo_variant} variant)"
        else:
            source = f"customers={self.customers}" + (f", transactions={self.transactions}" if self.transactions else "")
        return f"{source}; grain={self.grain}; threshold={self.threshold} ({self.threshold_mode})"


def validated_options(options: BuildOptions) -> BuildOptions:
    """Check the input files (readable, parseable, required columns) and return absolute paths."""
    customers = inputs.validate_input_file(options.customers, "customers") if options.customers else None
    transactions = (
        inputs.validate_input_file(options.transactions, "transactions") if options.transactions else None
    )
    return BuildOptions(
        customers=customers,
        transactions=transactions,
        grain=options.grain,
        threshold=options.threshold,
        threshold_mode=options.threshold_mode,
        demo_variant=options.demo_variant,
        extra_vars=options.extra_vars,
    )


def build_candidate(options: BuildOptions, published: Path, echo: Echo = print) -> Path:
    """Run ``dbt build`` into a fresh file beside ``published``; return it (not yet published)."""
    options = validated_options(options)
    published.parent.mkdir(parents=True, exist_ok=True)
    for stale in warehouse.remove_stale_builds(published):
        echo(f"segfit: removed stale build file {stale}")
    candidate = warehouse.building_path(published)
    candidate.unlink(missing_ok=True)
    echo(f"segfit: building {options.describe()}")
    code = warehouse.run_dbt(["build", "--vars", json.dumps(options.dbt_vars())], candidate, echo=echo,
                             env=options.dbt_env())
    if code != 0:
        candidate.unlink(missing_ok=True)
        raise SegfitError(f"dbt build failed (exit {code}); the published warehouse {published} is unchanged")
    return candidate


def build(options: BuildOptions, published: Path, echo: Echo = print) -> Path:
    candidate = build_candidate(options, published, echo)
    warehouse.publish(candidate, published)
    echo(f"segfit: published {published}")
    return published


EXAMPLE_SUMMARY_QUERY = "select * from marts.segment_retention_summary"
EXAMPLE_ANOMALY_QUERY = "select * from marts.classification_anomalies order by anomaly_rank limit 10"


def how_to_query(published: Path) -> str:
    return "\n".join(
        [
            f"segfit: marts are in {published} (schema marts), e.g.:",
            f'  duckdb -readonly {published} "{EXAMPLE_SUMMARY_QUERY}"',
            f"  python -c \"import duckdb; print(duckdb.connect('{published}', read_only=True)"
            f".sql('{EXAMPLE_ANOMALY_QUERY}'))\"",
            f"  SQLAlchemy / BI tools: duckdb:///{published}?access_mode=read_only",
        ]
    )
