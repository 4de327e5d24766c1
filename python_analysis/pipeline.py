"""The steps segfit runs: build (dbt), check (great-expectations), report. The CLI only wires these."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from python_analysis import build_gate, warehouse
from python_analysis.errors import SegfitError
from python_analysis.warehouse import dbt_runner, inputs, publishing

log = logging.getLogger(__name__)

GRAINS = ("all", "latest")
THRESHOLD_MODES = ("absolute", "relative", "zscore")
DEMO_VARIANTS = ("transactions", "precomputed")

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
    # add ``transactions`` to the published warehouse's stored transactions (dbt var transactions_load =
    # append), in a copy of that warehouse, instead of rebuilding from it alone
    append: bool = False
    # keep every checked transaction in the warehouse (dbt var transactions_load = store), so that later runs
    # can append to it; a plain full build stores only the rejected rows (it is faster)
    store: bool = False

    def __post_init__(self) -> None:
        if self.grain not in GRAINS:
            raise SegfitError(f"--grain must be 'all' or 'latest', got {self.grain!r}")
        if self.threshold_mode not in THRESHOLD_MODES:
            raise SegfitError(
                f"--threshold-mode must be 'absolute', 'relative' or 'zscore', got {self.threshold_mode!r}")
        if not isinstance(self.threshold, int | float) or math.isnan(self.threshold) or self.threshold < 0:
            raise SegfitError(f"--threshold must be a number >= 0, got {self.threshold!r}")
        if self.demo_variant not in DEMO_VARIANTS:
            raise SegfitError(f"demo variant must be 'transactions' or 'precomputed', got {self.demo_variant!r}")
        if self.transactions is not None and self.customers is None:
            raise SegfitError("--transactions needs --customers (the demo brings its own transactions)")
        if self.append and self.transactions is None:
            raise SegfitError("--append-transactions needs a transactions file")
        if self.store and (self.transactions is None or self.append):
            raise SegfitError("--store-transactions needs --transactions (an append always stores its file)")
        for key, value in self.extra_vars:
            if not key.isidentifier():
                raise SegfitError(f"--var name {key!r} is not a valid name")
            if key in ("customers_path", "transactions_path", "transactions_load"):
                raise SegfitError(f"--var {key} is not accepted: use --{key.removesuffix('_path').removesuffix('_load')}"
                                  + (" or --append-transactions / --store-transactions" if key != "customers_path" else ""))
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
            "transactions_load": "append" if self.append else "store" if self.store else "full",
        }
        values.update(dict(self.extra_vars))
        return values

    def input_fingerprints(self) -> dict[str, dict[str, object]]:
        """Name, size and SHA-256 of each input file, for marts.build_metadata."""
        return {kind: file_fingerprint(path) for kind, path in
                (("customers", self.customers), ("transactions", self.transactions)) if path is not None}

    def dbt_env(self) -> dict[str, str]:
        """The input paths for dbt, as environment variables: env_var() returns them as they are, while
        dbt would render a var value as Jinja (a file named ``{{7*7}}.csv`` would become ``49.csv``)."""
        return {
            PATH_ENV["customers"]: str(self.customers) if self.customers else "",
            PATH_ENV["transactions"]: str(self.transactions) if self.transactions else "",
            # what dbt's parse sees instead of the paths (macros/segfit_vars.sql, segfit_path_var): the same
            # from one daily file to the next, so dbt's saved parse stays valid
            "SEGFIT_PARSE_INPUTS": json.dumps({f"{kind}_path": parse_stand_in(kind, path) for kind, path in
                                               (("customers", self.customers), ("transactions", self.transactions))}),
        }

    def describe(self) -> str:
        if self.customers is None:
            source = f"demo seeds ({self.demo_variant} variant)"
        else:
            source = f"customers={self.customers}" + (
                f", {'appending ' if self.append else ''}transactions={self.transactions}" if self.transactions else "")
        return f"{source}; grain={self.grain}; threshold={self.threshold} ({self.threshold_mode})"


def parse_stand_in(kind: str, path: Path | None) -> str:
    """'<kind>.<extension>' (lower case; .csv.gz kept whole) for a given file, '' for none."""
    if path is None:
        return ""
    name = path.name.lower()
    return f"{kind}.csv.gz" if name.endswith(".csv.gz") else f"{kind}{Path(name).suffix}"


def file_fingerprint(path: Path) -> dict[str, object]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"name": path.name, "size_bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def copy_database(source: Path, target: Path) -> None:
    """Copy a DuckDB file, with its write-ahead log when there is one (committed changes not yet
    checkpointed belong to it too)."""
    shutil.copyfile(source, target)
    wal = source.with_name(source.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, target.with_name(target.name + ".wal"))


@contextlib.contextmanager
def linked_inputs(directory: Path, options: BuildOptions) -> Iterator[None]:
    """Link each given input file under its parse stand-in name (``parse_stand_in``) in ``directory``, where
    dbt runs: while dbt parses, the sources in models/staging/_staging__sources.yml name these links (through
    SEGFIT_PARSE_INPUTS), so a new day's file name changes nothing dbt parsed, and the source tests read the
    real file through them. The staging models read the real path. Removed when dbt is done."""
    links = []
    try:
        for kind, path in (("customers", options.customers), ("transactions", options.transactions)):
            if path is not None:
                link = directory / parse_stand_in(kind, path)
                link.symlink_to(path)
                links.append(link)
        yield
    finally:
        for link in links:
            link.unlink(missing_ok=True)


@contextlib.contextmanager
def copying_in_background(source: Path, target: Path) -> Iterator[Path]:
    """Copy ``source`` to ``target`` in a thread, and yield the gate file (build_gate) that says when it is
    written, or why not. On leaving, the copy has ended; a failed copy raises SegfitError (after whatever
    ran inside, which stops at the gate)."""
    gate = target.with_name(".segfit-build-file")
    failure: list[BaseException] = []

    def copy() -> None:
        started = time.perf_counter()
        try:
            copy_database(source, target)
        except BaseException as error:  # reported by the caller's thread
            failure.append(error)
            build_gate.open_gate(gate, f"copying {source} failed: {error}")
        else:
            build_gate.open_gate(gate)
            log.info("copied the published warehouse (%.2f GB) in %.1f s", target.stat().st_size / 1e9,
                     time.perf_counter() - started)

    thread = threading.Thread(target=copy, name="segfit-copy", daemon=True)
    thread.start()
    try:
        yield gate
    finally:
        thread.join()
        gate.unlink(missing_ok=True)
    if failure:
        raise SegfitError(f"copying the published warehouse {source} failed: {failure[0]}") from failure[0]


def validated_options(options: BuildOptions) -> BuildOptions:
    """Check the input files (readable, parseable, required columns) and return absolute paths."""
    customers = inputs.validate_input_file(options.customers, "customers") if options.customers else None
    transactions = (
        inputs.validate_input_file(options.transactions, "transactions") if options.transactions else None
    )
    # every other option as given (a field added to BuildOptions is carried without an edit here)
    return dataclasses.replace(options, customers=customers, transactions=transactions)


def build_candidate(options: BuildOptions, published: Path, force: bool = False) -> publishing.Slot:
    """Run ``dbt build`` into a fresh, locked build directory beside ``published``; not yet published.

    On any failure or interrupt the directory is removed and the published warehouse is untouched.
    """
    options = validated_options(options)
    publishing.check_warehouse_target(published, tuple(p for p in (options.customers, options.transactions) if p),
                                      force=force)
    for stale in publishing.sweep(published):
        log.info("removed leftover build %s", stale)
    previous = publishing.current_target(published)
    if previous is not None and not publishing.has_marts(previous):
        previous = None  # a foreign file replaced with --force has no history to carry over
    if options.append and previous is None:
        raise SegfitError(f"--append-transactions needs a published warehouse to append to, and {published} has "
                          "none: build it once with --transactions FILE --store-transactions")
    slot = publishing.new_slot(published)
    try:
        log.info("building %s", options.describe())
        saved_parse = dbt_runner.seed_partial_parse(previous, slot.target)
        if saved_parse is not None:
            log.info("dbt starts from the saved parse %s (it re-parses only what changed)", saved_parse)
        fingerprints = options.input_fingerprints()
        build_env = {**options.dbt_env(), "SEGFIT_INPUT_FINGERPRINTS": json.dumps(fingerprints)}
        if previous is not None:
            build_env["SEGFIT_PREVIOUS_BUILD"] = str(previous)
        with contextlib.ExitStack() as stack:
            if previous is not None:
                stack.enter_context(publishing.reading(previous))
            command = ["build", "--vars", json.dumps(options.dbt_vars()),
                       *left_out(_published_metadata(previous) if options.append else [], options, fingerprints)]
            stack.enter_context(linked_inputs(slot.target.parent, options))
            if options.append:
                # the build starts from a copy of the published warehouse (its stored transactions), made
                # while dbt starts and parses; dbt's first connection waits for it (build_gate). The
                # published file is untouched until the new one is published whole.
                with copying_in_background(previous, slot.target) as gate:
                    code = warehouse.run_dbt(command, slot.target, build={**build_env, build_gate.ENVIRONMENT_VARIABLE:
                                                                           str(gate)})
            else:
                code = warehouse.run_dbt(command, slot.target, build=build_env)
        if code != 0:
            raise SegfitError(f"dbt build failed (exit {code}); the published warehouse {published} is unchanged")
        dbt_runner.keep_saved_parse(slot.target)
    except BaseException:
        slot.discard()
        raise
    return slot


def left_out(published_rows: list[tuple], options: BuildOptions, fingerprints: dict[str, dict[str, object]]
             ) -> list[str]:
    """The ``--exclude`` arguments of a build: what it need not run, each said in one line.

    segfit's builds are production runs: they skip the dbt unit tests, which test the SQL on fixed rows, not
    the data (dbt's guidance: run unit tests in development and CI). `dbt build` and `dbt test --select
    test_type:unit` run them, and `make test` does on an empty warehouse. An append whose customers file is
    the published build's (``published_rows``: its marts.build_metadata; none for other builds) keeps the
    customer side (CUSTOMER_SIDE), and, under the same anomaly rule, the history snapshot (HISTORY)."""
    excluded = ["--exclude", "test_type:unit"]
    if not _same_customers(published_rows, fingerprints):
        return excluded
    log.info("the customers file is the published build's (same SHA-256): its models are kept")
    excluded += ["--exclude", *CUSTOMER_SIDE]
    if _same_flag_rule(published_rows, options):
        log.info("so is the anomaly rule (threshold and mode): no customer's segment, retention or flag can "
                 "change, and the history snapshot is kept as it is")
        excluded += ["--exclude", HISTORY]
    return excluded


# the models (with their ancestors and tests) that read only the customers file: an appending run whose
# customers file is byte-identical to the published build's keeps them as copied, instead of rebuilding
# and re-testing them to the same rows (the append guard still compares the records with the stored
# aggregates, and the vars that shaped them)
CUSTOMER_SIDE = ("+int_customer_records_deduplicated", "+duplicate_customer_keys")


# The history snapshot (snapshots/customer_segment_fit_history.sql) versions each customer's segment,
# retention and anomaly flag. When an append keeps the customer side (CUSTOMER_SIDE, same customers file), the
# records, their segments and retentions, and so the segment averages, are the stored ones; the flag then
# depends only on the anomaly threshold and its mode. With those unchanged too, the snapshot would find no
# change (and customer_fit_changes, which lists the versions this build started or ended, is empty either
# way), so the append leaves it out instead of comparing every customer with its current version.
HISTORY = "customer_segment_fit_history"


def _published_metadata(previous: Path) -> list[tuple]:
    """marts.build_metadata of the published build: (source, file_sha256, anomaly_threshold,
    anomaly_threshold_mode) per input. The caller holds its read lock."""
    with duckdb.connect(str(previous), read_only=True) as con:
        return con.execute("select source, file_sha256, anomaly_threshold, anomaly_threshold_mode "
                           "from marts.build_metadata").fetchall()


def _same_flag_rule(published_rows: list[tuple], options: BuildOptions) -> bool:
    """Did the published build flag anomalies with this build's threshold and mode?"""
    effective = options.dbt_vars()
    try:
        threshold = float(effective["anomaly_threshold"])
    except (TypeError, ValueError):
        return False  # dbt's own validation reports it
    mode = str(effective["anomaly_threshold_mode"]).strip().lower()
    return {(row[2], row[3]) for row in published_rows} == {(threshold, mode)}


def _same_customers(published_rows: list[tuple], fingerprints: dict[str, dict[str, object]]) -> bool:
    """Was the published build made from a customers file with this one's content?"""
    fingerprint = fingerprints.get("customers")
    stored = [row[1] for row in published_rows if row[0] == "customers"]
    return fingerprint is not None and stored == [fingerprint["sha256"]]


def build(options: BuildOptions, published: Path, force: bool = False) -> Path:
    slot = build_candidate(options, published, force=force)
    try:
        publishing.publish(published, slot)
    except BaseException:
        slot.discard()
        raise
    log.info("published %s", published)
    return published
