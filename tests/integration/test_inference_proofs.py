"""Statistical proofs of the within-segment inference on generated data with planted truth: the false-positive
rate over 10 null datasets, the power over 10 seeds at 2,000 records, and the verdicts on one planted
2,000-record dataset (no warehouse; slow layer because they run the full inference, most of them 10 times).
The generator is tests/unit/test_inference.py's.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from python_analysis import inference
from python_analysis.profile import data_profile
from tests.unit.test_inference import DELTA_TO_SHIFT, FAST, fast_verdicts, generate, verdicts


@pytest.fixture(scope="module")
def planted():
    frame = generate(seed=1, effect_shift=DELTA_TO_SHIFT)
    return frame, verdicts(frame)


def test_planted_within_segment_effect_is_supported(planted):
    frame, v = planted
    stability = v["transaction stability"]
    assert stability.verdict == "supported", stability
    assert stability.evidence["input"] == "transaction_value_volatility"
    lo, hi = stability.evidence["ci"]
    # independent: per-segment Cliff's delta from scipy's U, combined with the same weights
    num = den = 0.0
    for _, part in frame.groupby("profitability_segment"):
        a = part.loc[part.is_classification_anomaly, "transaction_value_volatility"]
        b = part.loc[~part.is_classification_anomaly, "transaction_value_volatility"]
        if len(a) and len(b):
            u = stats.mannwhitneyu(a, b).statistic
            h = len(a) * len(b) / (len(a) + len(b))
            num += h * (2 * u / (len(a) * len(b)) - 1)
            den += h
    expected = num / den
    contrast = stability.evidence["contrast"]
    if contrast == "anomaly vs normal":
        assert stability.evidence["delta"] == pytest.approx(expected, abs=1e-9)
    assert lo <= stability.evidence["delta"] <= hi
    assert lo > inference.NEGLIGIBLE


def test_confounded_dimension_is_not_supported(planted):
    frame, v = planted
    # the pooled comparison does find it (that is the confounding) ...
    a = frame.loc[frame.is_classification_anomaly, "seasonality_cv"]
    b = frame.loc[~frame.is_classification_anomaly, "seasonality_cv"]
    assert stats.mannwhitneyu(a, b).pvalue < 1e-6
    # ... but within segments there is nothing
    assert v["seasonal preference"].verdict in {"not_supported", "inconclusive"}
    assert v["seasonal preference"].verdict != "supported"


def test_constant_column_is_not_testable(planted):
    frame, v = planted
    lifecycle = v["lifecycle stage"]
    assert lifecycle.verdict == "not_testable"
    assert "customer_age_days" in lifecycle.untestable_inputs
    assert data_profile(frame).constant_columns == ("customer_age_days",)


def test_noise_dimension_is_not_supported(planted):
    _, v = planted
    assert v["value realization"].verdict in {"not_supported", "inconclusive"}


def test_q_values_are_benjamini_hochberg_within_each_family(planted):
    frame, _ = planted
    result = inference.infer_grain(frame, "all", settings=FAST)
    for tests in result.tests.values():
        ps = [t.p_value for t in tests if t.testable]
        qs = [t.q_value for t in tests if t.testable]
        if ps:
            # independent BH: q_(i) = min over j >= i of p_(j) m / j
            order = np.argsort(ps)
            m = len(ps)
            ranked = np.array(ps)[order] * m / np.arange(1, m + 1)
            expected = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1)
            assert np.array(qs)[order] == pytest.approx(expected)


def test_false_positive_rate_on_null_datasets():
    """Behaviour independent of retention within segment: at most 1 supported verdict over 10 datasets x 4
    dimensions. Fast by design: the statistics are computed in Python from the mart-shaped frame
    (``customer_segment_fit`` columns), so the inference runs directly on generated frames, no dbt build per
    seed (one record per customer, so both grains hold the same records)."""
    supported = []
    for seed in range(100, 110):
        v = fast_verdicts(generate(seed=seed, effect_shift=0.0))
        supported += [(seed, d) for d, r in v.items() if r.verdict == "supported"]
    assert len(supported) <= 1, supported


def test_power_at_delta_half_and_2000_records():
    """A planted within-segment effect of Cliff's delta 0.5 at 2,000 records is supported in >= 9 of 10 seeds.
    Like the false-positive test, it runs the Python statistics layer on generated mart-shaped frames (no dbt
    build per seed)."""
    hits = 0
    for seed in range(200, 210):
        v = fast_verdicts(generate(seed=seed, effect_shift=DELTA_TO_SHIFT))
        hits += v["transaction stability"].verdict == "supported"
    assert hits >= 9, hits
