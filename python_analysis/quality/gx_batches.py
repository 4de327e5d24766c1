"""great-expectations itself: the context (with its local Data Docs site) and one validated batch."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .offending import _raised, _target_columns
from .results import ChecksError


def _parameters_of(expectation: Any) -> set[str]:
    return {value["$PARAMETER"] for value in expectation.configuration.kwargs.values()
            if isinstance(value, dict) and "$PARAMETER" in value}



def _escape_deep(value: Any) -> Any:
    if isinstance(value, str):
        return html.escape(value)
    if isinstance(value, dict):
        return {_escape_deep(k): _escape_deep(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape_deep(v) for v in value]
    return value


def _escape_stored_results(context: Any) -> None:
    """HTML-escape every string of the stored validation results before Data Docs are rendered.

    GX 1.24's renderers put unexpected values (partial_unexpected_list, observed values, ...) into the page
    unescaped, so a data value such as ``<script>`` would become markup. The escaped copies only feed the
    HTML; the report is built from the unescaped in-memory results.
    """
    store = context.validation_results_store
    for key in store.list_keys():
        stored = store.get(key)
        for item in stored.results:
            item.result = _escape_deep(item.result or {})
            item.exception_info = _escape_deep(item.exception_info or {})
        store.set(key, stored)


def import_great_expectations() -> None:
    """Import the great-expectations modules the checks use (about 2.5 s on two cores), so that a caller can
    load them in a background thread while it waits for something else (``segfit run``: during the build)."""
    import great_expectations  # noqa: F401
    import great_expectations.expectations  # noqa: F401
    from great_expectations.core.run_identifier import RunIdentifier  # noqa: F401
    from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: F401


def _make_context(root: Path | None, data_docs_dir: Path | None) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if root is None:
        context = gx.get_context(mode="ephemeral")
    else:
        context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if data_docs_dir is not None:
        for site in list(context.get_site_names()):
            context.delete_data_docs_site(site)
        context.add_data_docs_site(
            site_name="segfit",
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(data_docs_dir)},
            },
        )
    return context



def _validate(validation: Any, suite: Any, table: str, frame: Any, parameters: Mapping[str, float],
              expected: int, run_name: str | None = None,
              result_format: Mapping[str, Any] | None = None) -> dict[int, Any]:
    """Run one GX batch (``frame``: a pandas or a Spark DataFrame, for the validation's datasource); the
    results keyed by the expectation's position in the suite."""
    from great_expectations.core.run_identifier import RunIdentifier

    try:
        result = validation.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters={k: parameters[k] for k in sorted(parameters)},
            result_format=dict(result_format or {"result_format": "COMPLETE"}),
            run_id=RunIdentifier(run_name=run_name) if run_name else None,
        )
    except Exception as exc:  # noqa: BLE001 - any GX failure is a failure of the run
        raise ChecksError(f"{table}: great-expectations raised {type(exc).__name__}: {exc}") from exc
    return _by_position(result, suite, table, expected)


def _by_position(result: Any, suite: Any, table: str, expected: int) -> dict[int, Any]:
    """A suite's validation result keyed by position; a raised or reported GX exception is a ChecksError."""
    order = {expectation.id: position for position, expectation in enumerate(suite.expectations)}
    by_position: dict[int, Any] = {}
    for item in result.results:
        message = _raised(item.exception_info)
        config_ = item.expectation_config
        if message is not None:
            raise ChecksError(f"{table}: {config_.type}({', '.join(_target_columns(config_.kwargs))}) "
                              f"raised: {message}")
        if config_.id not in order:
            raise ChecksError(f"{table}: result for an unknown expectation {config_.type}")
        by_position[order[config_.id]] = item
    if len(by_position) != expected:
        raise ChecksError(f"{table}: {expected} expectations, {len(by_position)} results")
    return by_position
