"""The stated analysis sample (sampling.py): stratified by segment x has-an-anomaly-record, grouped by customer,
and nothing sampled at or below the threshold. Expected values are recomputed here with pandas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from python_analysis.config import ReportConfig
from python_analysis.sampling import analysis_sample, sample_sentence

try:
    from tests.report_fixtures import make_fit
except ImportError:  # tests/ is not a package
    from report_fixtures import make_fit

SMALL = ReportConfig(analysis_sample_threshold=1000, analysis_sample_size=500)


def _with_copies(n: int = 2400, seed: int = 3) -> pd.DataFrame:
    """make_fit has two records per customer; give every 7th customer a third copy (another segment/flag)."""
    fit = make_fit(n, seed=seed)
    extra = fit[fit["customer_id"].str[1:].astype(int) % 7 == 0].copy()
    extra["customer_record_id"] = extra["customer_record_id"] + "x"
    extra["profitability_segment"] = extra["profitability_segment"].iloc[::-1].to_numpy()
    extra["is_classification_anomaly"] = ~extra["is_classification_anomaly"].to_numpy()
    return pd.concat([fit, extra], ignore_index=True)


def _customer_strata(fit: pd.DataFrame) -> pd.DataFrame:
    """Per customer (pandas): the segment of its smallest customer_record_id, any anomaly record, its records."""
    first = fit.sort_values("customer_record_id").groupby("customer_id")["profitability_segment"].first()
    return pd.DataFrame({"segment": first,
                         "has_anomaly": fit.groupby("customer_id")["is_classification_anomaly"].any(),
                         "records": fit.groupby("customer_id").size()})


def test_below_the_threshold_nothing_is_sampled():
    fit = make_fit(400)
    sample = analysis_sample(fit, ReportConfig())
    assert not sample.sampled
    assert np.array_equal(sample.positions, np.arange(len(fit)))
    assert sample.records == sample.population_records == len(fit)
    assert sample.customers == fit["customer_id"].nunique()
    assert sample.to_dict()["applies_to"] == []
    assert sample_sentence(sample) is None
    # exactly at the threshold: still every record
    assert not analysis_sample(fit, ReportConfig(analysis_sample_threshold=400, analysis_sample_size=100)).sampled


def test_the_sample_keeps_whole_customers_in_proportion_to_every_stratum():
    fit = _with_copies()
    n = len(fit)
    sample = analysis_sample(fit, SMALL)
    assert sample.sampled and n > SMALL.analysis_sample_threshold
    chosen = fit.iloc[sample.positions]
    # grouped: a customer's records are all in the sample or none is
    in_sample = fit["customer_record_id"].isin(chosen["customer_record_id"])
    assert (in_sample.groupby(fit["customer_id"]).nunique() == 1).all()
    assert np.array_equal(sample.positions, np.sort(sample.positions))
    # stratified: every stratum's quota of records, at most one customer's records over it
    strata = _customer_strata(fit)
    strata["chosen"] = strata.index.isin(chosen["customer_id"])
    max_copies = int(strata["records"].max())
    for (segment, flag), group in strata.groupby(["segment", "has_anomaly"]):
        quota = math.ceil(SMALL.analysis_sample_size * group["records"].sum() / n)
        taken = int(group.loc[group["chosen"], "records"].sum())
        assert group["chosen"].any(), (segment, flag)
        assert quota <= taken < quota + max_copies or taken == group["records"].sum(), (segment, flag, quota, taken)
    # the stated figures are those of the sample
    stated = sample.to_dict()
    assert stated["records"] == len(chosen)
    assert stated["customers"] == chosen["customer_id"].nunique()
    assert stated["anomaly_records"] == int(chosen["is_classification_anomaly"].sum())
    assert stated["anomaly_customers"] == int(strata.loc[strata["chosen"], "has_anomaly"].sum())
    assert stated["population_records"] == n and stated["population_customers"] == fit["customer_id"].nunique()
    table = stated["strata"].set_index(["profitability_segment", "has_anomaly"])
    expected = strata.groupby(["segment", "has_anomaly"])["records"].sum()
    assert table["population_records"].sort_index().tolist() == expected.sort_index().tolist()
    assert int(table["sample_records"].sum()) == len(chosen)
    assert "sample of" in sample_sentence(sample) and f"{len(chosen):,} records" in sample_sentence(sample)


def test_the_sample_is_seeded():
    fit = _with_copies()
    a, b = analysis_sample(fit, SMALL), analysis_sample(fit, SMALL)
    assert np.array_equal(a.positions, b.positions)
    other = analysis_sample(fit, ReportConfig(analysis_sample_threshold=1000, analysis_sample_size=500, random_state=1))
    assert not np.array_equal(a.positions, other.positions)


def test_records_outside_the_sample_are_encoded_like_the_fit_and_checked():
    """The population scoring encodes other records with the sample's columns: on the sample itself the
    encoding equals feature_matrix's (missing values left for the pipelines' imputers), an unseen level has no
    column, and a non-finite value outside the sample still stops the report with a one-line error."""
    import pytest

    from python_analysis.errors import SegfitError
    from python_analysis.modeling import encode_like, feature_matrix

    fit = make_fit(200)
    fit.loc[::5, "transaction_value_volatility"] = np.nan
    numeric, categorical = ["transaction_value_volatility", "transaction_count"], ["lifecycle_stage"]
    fm = feature_matrix(fit, numeric, categorical, ReportConfig(), impute=False)
    np.testing.assert_array_equal(encode_like(fit, fm, fit), fm.X)
    other = fit.head(3).copy()
    other["lifecycle_stage"] = "never seen"
    encoded = encode_like(other, fm, fit)
    assert (encoded[:, [fm.columns.index(c) for c in fm.columns if c.startswith("lifecycle_stage=")]] == 0).all()
    other["transaction_count"] = other["transaction_count"].astype(float)
    other.loc[other.index[1], "transaction_count"] = np.inf
    with pytest.raises(SegfitError, match=r"feature 'transaction_count'.*R00001"):
        encode_like(other, fm, fit)
