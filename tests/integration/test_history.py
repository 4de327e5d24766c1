"""Segment fit over time: the snapshot carries history from build to build, and customer_fit_changes says
who became an anomaly since the last build and who stopped being one.

The expected changes come from pandas: each customer's latest record (the README's `latest` rule) in the
marts of the two builds, compared flag by flag.
"""

from __future__ import annotations

import contextlib
import shutil

import duckdb
import pandas as pd
import pytest

from python_analysis import pipeline
from python_analysis.warehouse import publishing
from tests.builds import publish_copy


def _latest_flags(path) -> pd.Series:
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        fit = con.execute("select customer_id, subsidiary_id, segmentation_date, source_row_number, "
                          "is_classification_anomaly from marts.customer_segment_fit").df()
    fit = fit.sort_values(["segmentation_date", "subsidiary_id", "source_row_number"], na_position="first")
    return fit.groupby("customer_id")["is_classification_anomaly"].last().astype(bool)


def _changes(path) -> pd.DataFrame:
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        return con.execute("select * from marts.customer_fit_changes").df()


def _history(path) -> pd.DataFrame:
    with contextlib.closing(duckdb.connect(str(path), read_only=True)) as con:
        return con.execute("select * from snapshots.customer_segment_fit_history").df()


def _expected(before: pd.Series, after: pd.Series) -> dict[str, set[str]]:
    both = before.index.intersection(after.index)
    return {
        "became_anomaly": set(both[(~before[both]) & after[both]]),
        "stopped_being_anomaly": set(both[before[both] & (~after[both])]),
        "new_anomaly": set(after.index.difference(before.index)[after[after.index.difference(before.index)]]),
        "gone_anomaly": set(before.index.difference(after.index)[before[before.index.difference(after.index)]]),
    }


def _observed(changes: pd.DataFrame) -> dict[str, set[str]]:
    kinds = ("became_anomaly", "stopped_being_anomaly", "new_anomaly", "gone_anomaly")
    return {kind: set(changes.loc[changes["change_type"] == kind, "customer_id"]) for kind in kinds}


def test_the_first_build_has_one_version_per_customer_and_no_changes(demo_warehouse):
    history = _history(demo_warehouse)
    assert history["customer_id"].is_unique
    assert set(history["customer_id"]) == set(_latest_flags(demo_warehouse).index)
    assert _changes(demo_warehouse).empty


@pytest.fixture(scope="module")
def rebuilt(demo_warehouse, tmp_path_factory):
    """The demo at threshold 0.15 published, then rebuilt at 0.10 and back at 0.15 on top of it."""
    published = tmp_path_factory.mktemp("history") / "segfit.duckdb"
    first = publish_copy(demo_warehouse, published)
    pipeline.build(pipeline.BuildOptions(threshold=0.10), published)
    second = publishing.current_target(published)
    shutil.copyfile(second, published.with_name("second.duckdb"))  # keep it past the third build's sweep
    pipeline.build(pipeline.BuildOptions(threshold=0.15), published)
    return first, published.with_name("second.duckdb"), publishing.current_target(published)


def test_a_rebuild_lists_exactly_the_customers_whose_flag_changed(rebuilt):
    first, second, third = rebuilt
    expected = _expected(_latest_flags(first), _latest_flags(second))
    assert expected["became_anomaly"], "the lower threshold must flag more customers"
    assert _observed(_changes(second)) == expected
    # and back: the same customers stop being anomalies
    expected_back = _expected(_latest_flags(second), _latest_flags(third))
    assert expected_back["stopped_being_anomaly"] == expected["became_anomaly"]
    assert _observed(_changes(third)) == expected_back


def test_history_keeps_every_version_across_published_builds(rebuilt):
    first, second, third = rebuilt
    history = _history(third)
    changed = _expected(_latest_flags(first), _latest_flags(second))["became_anomaly"]
    versions = history.groupby("customer_id").size()
    assert set(versions[versions == 3].index) == changed
    assert (versions[~versions.index.isin(changed)] == 1).all()
    current = history[history["dbt_valid_to"].isna()].set_index("customer_id")["is_classification_anomaly"]
    assert current.astype(bool).sort_index().equals(_latest_flags(third).sort_index())
