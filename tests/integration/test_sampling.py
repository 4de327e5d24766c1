"""warehouse.read_stratified_sample: a stratified sample of a large mart taken in SQL (bounded memory for the
report's heavy models). Expected counts come from pandas on the same table."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from python_analysis import warehouse
from python_analysis.errors import SegfitError


def _mart(path: Path) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 1_000
    frame = pd.DataFrame({
        "customer_record_id": [f"r{i:05d}" for i in range(n)],
        "profitability_segment": rng.choice(["A", "B", "C"], size=n, p=[0.6, 0.3, 0.1]),
        "is_classification_anomaly": rng.random(n) < 0.05,
        "retention_probability": rng.random(n),
    })
    frame.loc[:2, "profitability_segment"] = "Rare"   # a 3-row stratum
    frame.loc[10, "profitability_segment"] = None     # a null stratum value is a stratum too
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.register("frame", frame)
        con.execute("create table marts.customer_segment_fit as select * from frame")
    return frame


def test_each_stratum_keeps_its_share_and_the_rows_are_the_marts_rows(tmp_path: Path):
    path = tmp_path / "w.duckdb"
    mart = _mart(path)
    sample, strata = warehouse.read_stratified_sample(path, max_rows=100, seed=3)
    keys = ["profitability_segment", "is_classification_anomaly"]
    population = mart.groupby(keys, dropna=False).size()
    expected = population.map(lambda rows: math.ceil(100 * rows / len(mart)))
    got = sample.groupby(keys, dropna=False).size()
    assert got.sort_index().to_dict() == expected.sort_index().to_dict()
    assert got[("Rare", False)] >= 1 or got.get(("Rare", True), 0) >= 1
    assert 100 <= len(sample) <= 100 + len(population)
    # the strata table states population and sample rows per stratum
    stated = strata.set_index(keys)
    assert stated["population_rows"].sum() == len(mart)
    assert stated["sample_rows"].sum() == len(sample)
    # the sampled rows are the mart's rows, unchanged, one each, in key order
    joined = sample.merge(mart, on="customer_record_id", suffixes=("", "_mart"))
    assert len(joined) == len(sample) == sample["customer_record_id"].nunique()
    assert np.allclose(joined["retention_probability"], joined["retention_probability_mart"])
    assert sample["customer_record_id"].is_monotonic_increasing


def test_same_seed_same_sample_other_seed_other_sample_small_table_whole(tmp_path: Path):
    path = tmp_path / "w.duckdb"
    mart = _mart(path)
    first, _ = warehouse.read_stratified_sample(path, max_rows=100, seed=3)
    again, _ = warehouse.read_stratified_sample(path, max_rows=100, seed=3)
    other, _ = warehouse.read_stratified_sample(path, max_rows=100, seed=4)
    assert first["customer_record_id"].tolist() == again["customer_record_id"].tolist()
    assert first["customer_record_id"].tolist() != other["customer_record_id"].tolist()
    whole, strata = warehouse.read_stratified_sample(path, max_rows=len(mart))
    assert len(whole) == len(mart)
    assert (strata["sample_rows"] == strata["population_rows"]).all()


@pytest.mark.parametrize("kwargs", [{"table": "x; drop table y"}, {"key": "a b"}, {"strata": ("ok", "bad-name")},
                                    {"max_rows": 0}])
def test_bad_names_and_sizes_are_refused(tmp_path: Path, kwargs):
    path = tmp_path / "w.duckdb"
    _mart(path)
    with pytest.raises(SegfitError):
        warehouse.read_stratified_sample(path, **kwargs)
