"""`segfit` command line: a thin layer that parses arguments and wires the pipeline steps."""

from __future__ import annotations

import argparse
import logging
import math
import re
import signal
import sys
from pathlib import Path

from python_analysis import pipeline, serving, warehouse
from python_analysis.errors import (  # noqa: F401 - the exit codes are part of the CLI's interface
    EXIT_CHECKS_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USER_ERROR,
    SegfitError,
)
from python_analysis.pipeline import DEMO_VARIANTS, GRAINS, THRESHOLD_MODES


class _Formatter(logging.Formatter):
    """``segfit: <message>`` for segfit's own lines, ``  dbt | <line>`` for dbt's output, and records logged
    with ``extra={"raw": True}`` (multi-line hints) as they are."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if getattr(record, "raw", False):
            return message
        if record.name.endswith(".dbt"):
            return "  dbt | " + message
        return "segfit: " + message


def configure_logging(level: int = logging.INFO) -> None:
    """Progress to stdout through the ``python_analysis`` logger (errors go to stderr from ``main``)."""
    logger = logging.getLogger("python_analysis")
    for handler in list(logger.handlers):
        if getattr(handler, "segfit_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Formatter())
    handler.segfit_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM, so cleanup runs as it does for Ctrl-C."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


_NUMBER = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")


def _number(text: str) -> float:
    """A finite number in plain decimal or exponent notation (1, +1, .5, 1e20, 1e+3): the same grammar as
    the dbt var check (macros/segfit_vars.sql). No digit separators (1_000), no nan/inf."""
    if not _NUMBER.fullmatch(text.strip()) or not math.isfinite(float(text)):
        raise argparse.ArgumentTypeError(f"must be a finite number such as 0.15, 1e-3 or +1, got {text!r}")
    return float(text)


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customers", type=Path, help="customers CSV or Parquet (default: the demo seeds)")
    transactions = parser.add_mutually_exclusive_group()
    transactions.add_argument("--transactions", type=Path, help="transactions CSV or Parquet (optional)")
    transactions.add_argument("--append-transactions", type=Path, metavar="FILE",
                              help="add FILE (e.g. one day's transactions) to the published warehouse's "
                                   "transactions instead of rebuilding from one file (README, 'Daily files')")
    parser.add_argument("--store-transactions", action="store_true",
                        help="with --transactions: keep every checked transaction in the warehouse, so that later "
                             "runs can --append-transactions (a plain build stores only the rejected rows)")
    parser.add_argument("--grain", default="all", choices=GRAINS,
                        help="all (every record) or latest (one per customer)")
    parser.add_argument("--threshold", type=_number, default=0.15, help="anomaly threshold (default 0.15)")
    parser.add_argument("--threshold-mode", default="absolute", choices=THRESHOLD_MODES,
                        help="absolute, relative (share of the segment average) or zscore (segment SDs)")
    parser.add_argument("--demo-variant", default="transactions", choices=DEMO_VARIANTS,
                        help="demo input path (without --customers)")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="extra dbt var")
    parser.add_argument("--warehouse", help="DuckDB file (default $SEGFIT_DUCKDB_PATH or warehouse/segfit.duckdb); "
                        "with --engine spark the Spark warehouse directory (default warehouse/spark)")
    _add_engine_option(parser)
    parser.add_argument("--force", action="store_true",
                        help="replace a --warehouse or --out that exists but is not segfit's own")


def _add_engine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                        help="duckdb (default) or spark (`make install-spark`; README, \"Spark\")")


def _build_options(args: argparse.Namespace) -> pipeline.BuildOptions:
    extra = []
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep:
            raise SegfitError(f"--var expects NAME=VALUE, got {item!r}")
        extra.append((name.strip(), value.strip()))
    return pipeline.BuildOptions(
        customers=args.customers,
        transactions=args.append_transactions or args.transactions,
        append=args.append_transactions is not None,
        store=args.store_transactions,
        grain=args.grain,
        threshold=args.threshold,
        threshold_mode=args.threshold_mode,
        demo_variant=args.demo_variant,
        extra_vars=tuple(extra),
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="segfit", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="dbt build the warehouse (demo data when no paths are given)")
    _add_input_options(build)

    check = commands.add_parser("check", help="run the great-expectations checks on the warehouse")
    check.add_argument("--warehouse")
    _add_engine_option(check)
    check.add_argument("--out", type=Path, default=Path("reports/latest"), help="where the checks page (checks.html) goes")

    report = commands.add_parser("report", help="fit the models and write the report from the marts")
    report.add_argument("--warehouse")
    _add_engine_option(report)
    report.add_argument("--out", type=Path, default=Path("reports/latest"))
    report.add_argument("--force", action="store_true", help="replace an --out that is not a segfit report")

    run = commands.add_parser("run", help="build, then check, then report, in one go")
    _add_input_options(run)
    run.add_argument("--out", type=Path, default=Path("reports/latest"))

    demo = commands.add_parser("demo-data", help="regenerate the demo seeds")
    demo.add_argument("--seeds-dir", type=Path, default=warehouse.PROJECT_DIR / "seeds")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return _dispatch(args)
    except SegfitError as exc:
        print(f"segfit: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:  # a full disk, a vanished folder: what failed and where, not a traceback
        where = f": {exc.filename}" if exc.filename else ""
        print(f"segfit: error: {exc.strerror or exc}{where}; nothing new was published", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("segfit: interrupted; nothing new was published and temporary files were removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("segfit: terminated; nothing new was published and temporary files were removed", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo-data":
        from python_analysis import demo_data

        for path in demo_data.write_seeds(demo_data.generate_demo(), args.seeds_dir):
            logging.getLogger("python_analysis.cli").info("wrote %s", path)
        return EXIT_OK

    if getattr(args, "engine", "duckdb") == "spark":
        return _dispatch_spark(args)
    published = warehouse.resolve_warehouse_path(args.warehouse)
    if args.command == "build":
        pipeline.build(_build_options(args), published, force=args.force)
        logging.getLogger("python_analysis.cli").info("%s", serving.how_to_query(published), extra={"raw": True})
        return EXIT_OK
    from python_analysis import steps

    if args.command == "check":
        return steps.check_published(published, args.out)
    if args.command == "report":
        return steps.report_published(published, args.out, force=args.force)
    if args.command == "run":
        return steps.run_all(_build_options(args), published, args.out, force=args.force)
    raise SegfitError(f"unknown command {args.command!r}")


def _dispatch_spark(args: argparse.Namespace) -> int:
    from python_analysis import spark_engine

    published = warehouse.resolve_warehouse_path(args.warehouse or spark_engine.DEFAULT_WAREHOUSE)
    if args.command == "build":
        spark_engine.build(_build_options(args), published, force=args.force)
        return EXIT_OK
    if args.command == "check":
        return spark_engine.check_published(published, args.out)
    if args.command == "report":
        return spark_engine.report_published(published, args.out, force=args.force)
    if args.command == "run":
        return spark_engine.run_all(_build_options(args), published, args.out, force=args.force)
    raise SegfitError(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
