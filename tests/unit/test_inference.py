"""Within-segment inference and verdicts on generated data with planted truth (no warehouse needed).

Every expectation comes from how the data was generated (planted effect, confounding, constant column)
or from an independent pandas/scipy computation in the test, never from segfit's own output.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from python_analysis import inference

SEGMENTS = ("Basic", "Growing", "Standard", "Premium", "High Value")
# per segment: mean retention and the share of records planted far from it (anomaly rate differs by segment)
SEGMENT_MEAN = dict(zip(SEGMENTS, (0.35, 0.5, 0.6, 0.7, 0.8), strict=True))
SEGMENT_ANOMALY_RATE = dict(zip(SEGMENTS, (0.02, 0.04, 0.08, 0.12, 0.16), strict=True))
DELTA_TO_SHIFT = math.sqrt(2) * stats.norm.ppf(0.75)  # normal shift (in SD) with Cliff's delta 0.5


def generate(seed: int, n: int = 2000, effect_shift: float = 0.0, confounded: bool = True) -> pd.DataFrame:
    """One record per customer. ``effect_shift`` moves transaction_value_volatility of the anomalies (in SD of
    the normal records) inside every segment; seasonality_cv differs between segments only (confounded with
    the segment's anomaly rate); customer_age_days is constant; value features are pure noise."""
    rng = np.random.default_rng(seed)
    segment = rng.choice(SEGMENTS, size=n)
    far = rng.random(n) < np.array([SEGMENT_ANOMALY_RATE[s] for s in segment])
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    mean = np.array([SEGMENT_MEAN[s] for s in segment])
    retention = np.clip(mean + np.where(far, sign * rng.uniform(0.2, 0.3, n), rng.normal(0, 0.04, n)), 0, 1)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{seed}-{i:05d}" for i in range(n)],
            "subsidiary_id": "S1",
            "segmentation_date": "2025-01-01",
            "source_row_number": np.arange(1, n + 1),
            "profitability_segment": segment,
            "retention_probability": retention.round(4),
            "anomaly_threshold": 0.15,
            "anomaly_threshold_mode": "absolute",
        }
    )
    frame = inference.recompute_flags(frame)
    anomaly = frame["is_classification_anomaly"].to_numpy(dtype=bool)
    segment_rank = np.array([SEGMENTS.index(s) for s in segment], dtype=float)
    frame["transaction_value_volatility"] = rng.normal(0, 1, n) + effect_shift * anomaly
    frame["seasonality_cv"] = rng.normal(0, 1, n) + (1.5 * segment_rank if confounded else 0.0)
    frame["customer_age_days"] = 365
    frame["comprehensive_customer_score"] = rng.normal(50, 10, n)
    frame["value_mismatch_z"] = rng.exponential(1.0, n)
    return frame


def verdicts(frame: pd.DataFrame, grain: str = "all") -> dict[str, inference.Verdict]:
    result = inference.within_segment_inference(frame, grain, other_grain_available=True)
    return {v.dimension: v for v in result.verdicts}


FAST = inference.InferenceSettings(n_bootstrap=499, anomaly_definition=False)


def fast_verdicts(frame: pd.DataFrame) -> dict[str, inference.Verdict]:
    """One grain (every customer has one record, so both grains hold the same records)."""
    result = inference.within_segment_inference(frame, "latest", other_grain_available=True, settings=FAST)
    return {v.dimension: v for v in result.verdicts}


def test_customer_counts_once_and_records_are_counted():
    frame = generate(seed=3, n=400, effect_shift=0.0)
    # one customer copied 9 more times with the same values: it must not weigh more than once
    copies = pd.concat([frame] + [frame.iloc[[0]]] * 9, ignore_index=True)
    copies["source_row_number"] = np.arange(1, len(copies) + 1)
    result = inference.infer_grain(copies, "all", settings=FAST)
    base = inference.infer_grain(frame, "all", settings=FAST)
    t_copy = {(t.input, t.contrast): t for t in result.tests["transaction stability"]}
    t_base = {(t.input, t.contrast): t for t in base.tests["transaction stability"]}
    key = ("transaction_value_volatility", "anomaly")
    assert t_copy[key].delta == pytest.approx(t_base[key].delta, abs=1e-12)
    assert result.records == len(copies) and result.customers == frame["customer_id"].nunique()
    flagged = copies.loc[copies.is_classification_anomaly, "customer_id"].nunique()
    assert result.anomaly_customers == flagged
    assert result.anomaly_records == int(copies.is_classification_anomaly.sum())


def test_latest_records_follow_the_readme_rule():
    frame = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "b", "c", "c"],
            "subsidiary_id": ["S1", "S2", "S1", "S1", "S1", None, "S1"],
            "segmentation_date": ["2025-01-01", "2025-01-01", None, "2024-01-01", "2024-01-01", "2023-01-01",
                                  "2023-01-01"],
            "source_row_number": [1, 2, 3, 4, 5, 6, 7],
            "profitability_segment": ["X"] * 7,
            "retention_probability": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9],
            "anomaly_threshold": 0.15,
            "anomaly_threshold_mode": "absolute",
        }
    )
    latest = inference.latest_records(frame)
    # a: latest date wins, then the highest subsidiary (S2); b: same key -> last in the file; c: null sub is lowest
    assert latest.set_index("customer_id")["source_row_number"].to_dict() == {"a": 2, "b": 5, "c": 7}
    mean = np.mean([0.2, 0.5, 0.9])
    assert latest["segment_avg_retention"].tolist() == pytest.approx([mean] * 3)
    assert latest["is_classification_anomaly"].tolist() == [abs(x - mean) > 0.15 for x in (0.2, 0.5, 0.9)]


def test_romano_labels():
    assert [inference.magnitude(d) for d in (0.1, -0.2, 0.4, -0.6)] == ["negligible", "small", "medium", "large"]


def test_resegmentation_simulation_finds_a_planted_split_and_not_noise():
    rng = np.random.default_rng(7)
    n = 1200
    segment = rng.choice(SEGMENTS, size=n)
    x = rng.normal(size=n)
    base = np.array([SEGMENT_MEAN[s] for s in segment])
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "profitability_segment": segment,
            "retention_probability": np.clip(base + 0.15 * np.sign(x) + rng.normal(0, 0.05, n), 0, 1),
            "anomaly_threshold": 0.15,
            "anomaly_threshold_mode": "absolute",
        }
    )
    planted = inference.resegment(frame, "transaction stability", "x", x, inference.InferenceSettings())
    # independent: R^2 of the segment means vs the (segment, x > median) means
    r = frame["retention_probability"]
    total = ((r - r.mean()) ** 2).sum()
    before = 1 - ((r - r.groupby(segment).transform("mean")) ** 2).sum() / total
    above = x > pd.Series(x).groupby(segment).transform("median").to_numpy()
    after = 1 - ((r - r.groupby([segment, above]).transform("mean")) ** 2).sum() / total
    assert planted.r2_before == pytest.approx(before) and planted.r2_after == pytest.approx(after)
    assert planted.p_value < 0.01 and planted.anomalies_after < planted.anomalies_before
    noise = inference.resegment(frame, "transaction stability", "z", rng.normal(size=n), inference.InferenceSettings())
    assert noise.p_value > 0.05


def test_anomaly_definition_sensitivity_names_two_population_segments():
    """Segment 'Split' holds two retention populations (0.2 and 0.8, so most of it is flagged at 0.15), segment
    'Tight' one; sizes, Jaccard overlaps and the robust z come from pandas here."""
    rng = np.random.default_rng(5)
    split = np.r_[rng.normal(0.2, 0.02, 60), rng.normal(0.8, 0.02, 60)]
    tight = rng.normal(0.5, 0.05, 200)
    frame = pd.DataFrame({
        "customer_id": [f"C{i}" for i in range(320)],
        "profitability_segment": ["Split"] * 120 + ["Tight"] * 200,
        "retention_probability": np.r_[split, tight].round(4),
        "anomaly_threshold": 0.15,
        "anomaly_threshold_mode": "absolute",
    })
    frame = inference.recompute_flags(frame)
    result = inference.anomaly_definition_sensitivity(frame)
    rows = {r["segment"]: r for r in result["segments"]}
    assert rows["Split"]["two_retention_populations"] and rows["Split"]["bimodal"]
    assert not rows["Tight"]["two_retention_populations"] and not rows["Tight"]["bimodal"]
    assert result["two_population_segments"] == ["Split"]
    group = frame.groupby("profitability_segment")["retention_probability"]
    assert rows["Tight"]["retention_sd"] == pytest.approx(group.std().loc["Tight"])
    q = group.quantile([0.25, 0.75]).unstack()
    assert rows["Split"]["retention_iqr"] == pytest.approx(q.loc["Split", 0.75] - q.loc["Split", 0.25])
    flags = frame["is_classification_anomaly"].to_numpy(bool)
    deviation = (frame["retention_probability"] - group.transform("mean")).abs()
    by_name = {d["definition"]: d for d in result["definitions"]}
    assert by_name["absolute > 0.15"]["jaccard"] == 1.0
    for cut in (0.10, 0.20):
        alt = (deviation.round(10) > cut).to_numpy()
        expected = (alt & flags).sum() / (alt | flags).sum()
        assert by_name[f"absolute > {cut:.2f}"]["jaccard"] == pytest.approx(expected)
    median = group.transform("median")
    mad = (frame["retention_probability"] - median).abs().groupby(frame["profitability_segment"]).transform("median")
    robust = (0.6745 * (frame["retention_probability"] - median).abs() / mad).round(10) > 3.5
    assert by_name["robust MAD z > 3.5"]["anomalies"] == int(robust.sum())
    from python_analysis.verdicts import anomaly_definition_sentences
    sentences = anomaly_definition_sentences(result)
    assert any("Split" in s and "two retention populations" in s for s in sentences)
    assert not any("Tight" in s and "two retention populations" in s for s in sentences)
