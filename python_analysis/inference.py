"""Within-segment inference with the customer as the unit, and four-state verdicts per dimension.

The question: *within its segment, does a customer's behaviour explain why its retention does not fit?*

- Anomalies are compared with normal records only inside segments that hold both (strata), so a feature
  that merely differs between segments cannot look like an anomaly effect.
- Every record carries the weight 1 / (records of its customer), so a customer counts once in every test,
  and every interval comes from a bootstrap that resamples customers (``scipy.stats.bootstrap``).
- Effect size: Cliff's delta (P(x_anomaly > x_normal) - P(x_anomaly < x_normal)), per stratum, combined with
  van Elteren-like weights h = n_a n_n / (n_a + n_n) (effective customer counts), labelled on the Romano
  et al. scale (0.147 / 0.33 / 0.474). For a 0/1 feature (a category level, a rule) delta equals the
  difference of the two groups' rates.
- Tests: numeric features by a permutation test that shuffles the anomaly label within each segment
  (scipy's ``permutation_test`` has no strata); category levels and rules by Cochran-Mantel-Haenszel
  (statsmodels ``StratifiedTable``) on customer-weighted 2x2 tables, one per segment.
- Three contrasts per input: all anomalies, anomalies above and anomalies below the segment mean, each vs
  the normal records, so opposite effects cannot cancel.
- Benjamini-Hochberg q-values (``scipy.stats.false_discovery_control``) within each dimension's family.

Everything returns dataclasses and numbers; sentences are written by the report from them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from .analysis import anomaly_mask, numeric_column, text_column
from .config import (
    LIFECYCLE_FEATURES,
    SEASONALITY_FEATURES,
    STABILITY_FEATURES,
)

ROMANO = (0.147, 0.33, 0.474)  # negligible < 0.147 <= small < 0.33 <= medium < 0.474 <= large
NEGLIGIBLE = ROMANO[0]
MEDIUM = ROMANO[1]
VERDICTS = ("supported", "not_supported", "inconclusive", "not_testable")
CONTRASTS = ("anomaly", "above", "below")

DIMENSIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "transaction stability": {"numeric": STABILITY_FEATURES, "categorical": ()},
    "seasonal preference": {"numeric": SEASONALITY_FEATURES, "categorical": ("seasonal_preference",)},
    "lifecycle stage": {"numeric": LIFECYCLE_FEATURES, "categorical": ("lifecycle_stage",)},
    "value realization": {
        "numeric": ("revenue_per_score", "value_mismatch_z", "comprehensive_customer_score"),
        "categorical": (),
    },
}


def magnitude(delta: float) -> str:
    """Romano et al. (2006) label of |Cliff's delta|."""
    if delta is None or not math.isfinite(delta):
        return "n/a"
    d = abs(delta)
    if d < ROMANO[0]:
        return "negligible"
    if d < ROMANO[1]:
        return "small"
    if d < ROMANO[2]:
        return "medium"
    return "large"


@dataclass(frozen=True)
class InferenceSettings:
    alpha: float = 0.05
    n_bootstrap: int = 999
    max_ci_tests: int = 2  # per dimension, besides the best test (bounds the bootstrap cost)
    resegmentation_permutations: int = 199
    confidence: float = 0.95
    power: float = 0.80
    sample_size: int = 3000  # records used for inference when the data is larger (stratified sample)
    random_state: int = 0
    anomaly_definition: bool = True  # compute anomaly_definition_sensitivity per grain


@dataclass(frozen=True)
class Rule:
    feature: str
    operator: str  # '>' or '>='  or '<' or '<='
    threshold: float

    @property
    def name(self) -> str:
        return f"{self.feature} {self.operator} {self.threshold:g}"


@dataclass(frozen=True)
class TestResult:
    dimension: str
    input: str  # feature, 'column = level', or rule text
    kind: str  # numeric | level | rule
    contrast: str  # anomaly | above | below  (vs normal)
    test: str
    testable: bool
    note: str = ""
    strata: tuple[str, ...] = ()
    records_anomaly: int = 0
    records_normal: int = 0
    customers_anomaly: int = 0
    customers_normal: int = 0
    delta: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    q_value: float = math.nan
    odds_ratio: float = math.nan
    odds_ratio_ci: tuple[float, float] = (math.nan, math.nan)

    @property
    def magnitude(self) -> str:
        return magnitude(self.delta)

    def passes(self, alpha: float) -> bool:
        """q < alpha and the delta CI excludes the negligible band (-0.147, 0.147)."""
        return (
            self.testable
            and math.isfinite(self.q_value)
            and self.q_value < alpha
            and (self.ci_low > NEGLIGIBLE or self.ci_high < -NEGLIGIBLE)
        )

    def evidence(self) -> dict[str, object]:
        return {
            "input": self.input,
            "kind": self.kind,
            "contrast": f"{self.contrast} vs normal",
            "test": self.test,
            "effect": "Cliff's delta",
            "delta": self.delta,
            "magnitude": self.magnitude,
            "ci": [self.ci_low, self.ci_high],
            "p_value": self.p_value,
            "q_value": self.q_value,
            "odds_ratio": self.odds_ratio,
            "odds_ratio_ci": list(self.odds_ratio_ci),
            "records": [self.records_anomaly, self.records_normal],
            "customers": [self.customers_anomaly, self.customers_normal],
            "strata": list(self.strata),
            "note": self.note,
        }


@dataclass(frozen=True)
class GrainInference:
    """All tests of one grain: per-dimension families, sizes and minimum detectable effects."""

    grain: str
    records: int
    customers: int
    anomaly_records: int
    anomaly_customers: int
    strata: tuple[str, ...]  # segments holding both anomalies and normal records
    records_in_strata: int
    customers_in_strata: int
    anomaly_customers_in_strata: int
    mde: float  # minimum |delta| detectable with the stated power at alpha (anomaly vs normal)
    sampled: bool
    sample_size: int
    tests: dict[str, tuple[TestResult, ...]] = field(default_factory=dict)
    anomaly_definition: dict[str, object] = field(default_factory=dict)  # anomaly_definition_sensitivity


@dataclass(frozen=True)
class Verdict:
    dimension: str
    verdict: str
    reason: str  # a machine-readable reason code
    evidence: dict[str, object]
    other_grain: dict[str, object] | None
    tests: int
    testable_tests: int
    untestable_inputs: tuple[str, ...]
    mde: float


# ----------------------------------------------------------------------------------------- grains
def latest_records(fit: pd.DataFrame) -> pd.DataFrame:
    """One record per customer, by the README's rule for ``--grain latest`` (latest segmentation_date,
    missing = oldest; then the highest subsidiary_id; then the record last in the input), with the segment
    averages, deviations and flags recomputed over those records exactly as ``customer_segment_fit`` does."""
    n = len(fit)
    if n == 0:
        return recompute_flags(fit)
    customer = pd.factorize(text_column(fit, "customer_id"), sort=False)[0]
    if "segmentation_date" in fit.columns:
        dates = pd.to_datetime(fit["segmentation_date"], errors="coerce")
        date_key = np.where(dates.isna(), np.iinfo(np.int64).min, dates.to_numpy("datetime64[ns]").astype(np.int64))
    else:
        date_key = np.zeros(n, dtype=np.int64)
    if "subsidiary_id" in fit.columns:
        sub_key = pd.factorize(fit["subsidiary_id"].astype("string"), sort=True)[0]  # null -> -1 (lowest)
    else:
        sub_key = np.zeros(n, dtype=np.int64)
    row = numeric_column(fit, "source_row_number")
    row = np.where(np.isfinite(row), row, -np.inf)
    order = np.lexsort((row, sub_key, date_key, customer))
    last = np.r_[customer[order][1:] != customer[order][:-1], True]
    keep = np.sort(order[last])
    return recompute_flags(fit.iloc[keep].reset_index(drop=True), copy=False)


def recompute_flags(frame: pd.DataFrame, copy: bool = True) -> pd.DataFrame:
    """Segment averages, deviations, direction and anomaly flag over the records in ``frame``."""
    out = frame.copy() if copy else frame
    segment = text_column(out, "profitability_segment")
    retention = pd.Series(numeric_column(out, "retention_probability"), index=out.index)
    avg = retention.groupby(segment).transform("mean")
    deviation = (retention - avg).round(10)
    threshold = float(numeric_column(out, "anomaly_threshold")[0]) if len(out) else 0.15
    modes = text_column(out, "anomaly_threshold_mode").unique()
    mode = str(modes[0]) if len(modes) else "absolute"
    sd = retention.groupby(segment).transform("std")
    if mode == "relative":
        ratio = (deviation.abs() / avg.where(avg != 0)).round(10)
        flag = (ratio > threshold).fillna(False)
    elif mode == "zscore":
        ratio = (deviation.abs() / sd.where(sd != 0)).round(10)
        flag = (ratio > threshold).fillna(False)
    else:
        flag = deviation.abs() > threshold
    out["segment_avg_retention"] = avg.to_numpy()
    out["segment_sd_retention"] = sd.to_numpy()
    out["retention_deviation"] = (retention - avg).to_numpy()
    out["deviation_direction"] = np.where(deviation < 0, "below", "above")
    out["is_classification_anomaly"] = flag.to_numpy(dtype=bool)
    return out


# ----------------------------------------------------------------------------------------- core
@dataclass(frozen=True)
class _Prepared:
    """Units of one test (one per segment, customer and group): stratum, value (mean of the customer's
    records), customer code, weight (sum of 1/records-of-customer), anomaly label (0/1), records."""

    stratum: np.ndarray
    value: np.ndarray
    customer: np.ndarray
    weight: np.ndarray
    label: np.ndarray
    strata: tuple[str, ...]
    records: np.ndarray  # records behind each unit


def _stratum_parts(prep: _Prepared) -> list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """Per stratum: unit positions sorted by value, and how to sum weights per distinct value: the start of
    each run of equal values (``reduceat``), or a one-hot matrix when there are few distinct values
    (a matrix product is much faster), or nothing when every value is distinct."""
    parts = []
    for s in range(len(prep.strata)):
        pos = np.flatnonzero(prep.stratum == s)
        pos = pos[np.argsort(prep.value[pos], kind="mergesort")]
        v = prep.value[pos]
        starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
        if len(starts) == len(pos):
            parts.append((pos, None, None))
        elif len(starts) <= 64:
            onehot = np.zeros((len(pos), len(starts)))
            onehot[np.arange(len(pos)), np.cumsum(np.r_[True, v[1:] != v[:-1]]) - 1] = 1.0
            parts.append((pos, None, onehot))
        else:
            parts.append((pos, starts, None))
    return parts


def _per_value(w: np.ndarray, pos: np.ndarray, starts: np.ndarray | None, onehot: np.ndarray | None):
    if onehot is not None:
        return w[:, pos] @ onehot
    if starts is not None:
        return np.add.reduceat(w[:, pos], starts, axis=1)
    return w[:, pos]


def _combined_delta(parts, wa: np.ndarray, wn: np.ndarray) -> np.ndarray:
    """Stratified weighted Cliff's delta for each row of the (B, n) weight matrices ``wa`` / ``wn``.

    Per stratum, sum over anomaly units i and normal units j of w_i v_j sign(x_i - x_j) = sum over distinct
    values of A(x) (N(< x) - N(> x)); delta_s = that / (A N); strata combine with weights h = A N / (A + N).
    """
    num_total = np.zeros(wa.shape[0])
    h_total = np.zeros(wa.shape[0])
    for pos, starts, onehot in parts:
        a = _per_value(wa, pos, starts, onehot)
        n = _per_value(wn, pos, starts, onehot)
        cum = np.cumsum(n, axis=1)
        n_tot = cum[:, -1]
        num = (a * (2.0 * cum - n - n_tot[:, None])).sum(axis=1)
        a_tot = a.sum(axis=1)
        both = a_tot + n_tot
        ok = (a_tot > 0) & (n_tot > 0)
        safe = np.where(both > 0, both, 1.0)
        num_total += np.where(ok, num / safe, 0.0)
        h_total += np.where(ok, a_tot * n_tot / safe, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(h_total > 0, num_total / h_total, np.nan)


def _observed(prep: _Prepared, parts) -> float:
    wa = (prep.weight * prep.label)[None, :]
    wn = (prep.weight * (1 - prep.label))[None, :]
    return float(_combined_delta(parts, wa, wn)[0])


def _stratified_permutation_p(prep: _Prepared) -> float:
    """Two-sided p of the stratified, customer-weighted rank statistic under labels permuted within each
    segment, from its exact permutation mean and variance (normal approximation): van Elteren's test with
    customer weights.

    In a stratum, T_s = sum over anomaly units of w_i S_i with S_i = sum over all units j of w_j sign(x_i -
    x_j) (the anomaly-anomaly pairs cancel), so T_s is linear in the labels: under permutation E = 0 (the
    c_i = w_i S_i sum to 0) and Var = n_a n_n / (n (n - 1)) sum c_i^2. T = sum_s T_s / W_s (W_s = total
    weight of the stratum, fixed under permutation) is the numerator of the combined delta.
    """
    t_obs, var = 0.0, 0.0
    for s in range(len(prep.strata)):
        m = prep.stratum == s
        x, w, lab = prep.value[m], prep.weight[m], prep.label[m] > 0
        n, n_a = len(x), int(lab.sum())
        if n < 2 or n_a == 0 or n_a == n:
            continue
        order = np.argsort(x, kind="mergesort")
        xs, ws = x[order], w[order]
        cum = np.cumsum(ws)
        lo = np.searchsorted(xs, x, side="left")
        hi = np.searchsorted(xs, x, side="right")
        below = np.where(lo > 0, cum[np.maximum(lo - 1, 0)], 0.0)
        above = cum[-1] - cum[hi - 1]
        c = w * (below - above)
        total = w.sum()
        t_obs += c[lab].sum() / total
        var += n_a * (n - n_a) / (n * (n - 1)) * float(np.sum(c**2)) / total**2
    if var <= 0:
        return 1.0 if abs(t_obs) < 1e-12 else 0.0
    return float(2 * stats.norm.sf(abs(t_obs) / math.sqrt(var)))


def bootstrap_counts(n_customers: int, settings: InferenceSettings, seed: int) -> np.ndarray:
    """(n_bootstrap, n_customers) multiplicities of a customer-level bootstrap: every resample draws
    ``n_customers`` customers with replacement. Shared by every test of a grain."""
    rng = np.random.default_rng(seed)
    if n_customers == 0:
        return np.zeros((settings.n_bootstrap, 0))
    return rng.multinomial(n_customers, np.full(n_customers, 1.0 / n_customers), size=settings.n_bootstrap)


def _bootstrap_ci(prep: _Prepared, parts, counts: np.ndarray, settings: InferenceSettings) -> tuple[float, float]:
    """Percentile CI of the stratified delta over the customer-level bootstrap resamples ``counts``."""
    wa0 = prep.weight * prep.label
    wn0 = prep.weight * (1 - prep.label)
    deltas = []
    step = max(1, 2_000_000 // max(1, len(prep.label)))
    for start in range(0, counts.shape[0], step):
        mult = counts[start : start + step][:, prep.customer]
        deltas.append(_combined_delta(parts, wa0 * mult, wn0 * mult))
    values = np.concatenate(deltas)
    values = values[np.isfinite(values)]
    if len(values) < 0.9 * counts.shape[0]:
        return math.nan, math.nan
    tail = (1 - settings.confidence) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def _cmh(prep: _Prepared) -> tuple[float, float, tuple[float, float]]:
    """Cochran-Mantel-Haenszel p (continuity-corrected), pooled odds ratio and its CI, customer-weighted."""
    from statsmodels.stats.contingency_tables import StratifiedTable

    tables = []
    for s in range(len(prep.strata)):
        m = prep.stratum == s
        w, x, y = prep.weight[m], prep.value[m], prep.label[m] > 0  # x: share of the unit's records hit
        t = np.array(
            [[(w * x)[y].sum(), (w * (1 - x))[y].sum()], [(w * x)[~y].sum(), (w * (1 - x))[~y].sum()]],
            dtype=float,
        )
        if (t.sum(axis=0) > 0).all() and (t.sum(axis=1) > 0).all():
            tables.append(t)
    if not tables:
        return math.nan, math.nan, (math.nan, math.nan)
    st = StratifiedTable(np.dstack(tables))
    with np.errstate(all="ignore"):
        p = float(st.test_null_odds(correction=True).pvalue)
        odds = float(st.oddsratio_pooled)
        lo, hi = st.oddsratio_pooled_confint()
    return p, odds, (float(lo), float(hi))


# ----------------------------------------------------------------------------------------- one test
@dataclass(frozen=True)
class _Columns:
    """The per-record arrays every test of a grain needs (computed once per grain)."""

    segment: np.ndarray
    anomaly: np.ndarray
    direction: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> _Columns:
        return cls(
            segment=text_column(frame, "profitability_segment").to_numpy(dtype=object),
            anomaly=anomaly_mask(frame),
            direction=text_column(frame, "deviation_direction").to_numpy(dtype=object),
        )


def _prepare(
    values: np.ndarray, cols: _Columns, weight: np.ndarray, customer: np.ndarray, contrast: str
) -> tuple[_Prepared | None, str]:
    segment, anomaly = cols.segment, cols.anomaly
    group = anomaly if contrast == "anomaly" else anomaly & (cols.direction == contrast)
    eligible = (group | ~anomaly) & np.isfinite(values)
    strata = sorted(
        s for s in set(segment[eligible]) if group[eligible & (segment == s)].any()
        and (~anomaly[eligible & (segment == s)]).any()
    )
    if not strata:
        return None, "no segment holds both groups with a value"
    code = {s: i for i, s in enumerate(strata)}
    keep = eligible & np.isin(segment, strata)
    # one unit per (segment, customer, group): the mean of the customer's copies, weighted by the sum of
    # their record weights, so a customer counts once however many copies it has
    stratum = np.array([code[s] for s in segment[keep]], dtype=np.int64)
    key = (customer[keep].astype(np.int64) * len(strata) + stratum) * 2 + group[keep].astype(np.int64)
    unit_key, inverse = np.unique(key, return_inverse=True)
    records = np.bincount(inverse)
    w = weight[keep]
    prep = _Prepared(
        stratum=(unit_key // 2) % len(strata),
        value=np.bincount(inverse, weights=values[keep] * w) / np.bincount(inverse, weights=w),
        customer=unit_key // 2 // len(strata),
        weight=np.bincount(inverse, weights=w),
        label=(unit_key % 2).astype(float),
        strata=tuple(strata),
        records=records,
    )
    varies = any(np.ptp(prep.value[prep.stratum == s]) > 0 for s in range(len(strata)))
    if not varies:
        return None, "constant within every segment"
    return prep, ""


def run_test(
    dimension: str,
    name: str,
    kind: str,
    values: np.ndarray,
    cols: _Columns,
    weight: np.ndarray,
    customer: np.ndarray,
    contrast: str,
) -> TestResult:
    test_name = "Cochran-Mantel-Haenszel" if kind != "numeric" else "van Elteren (stratified permutation)"
    base = TestResult(dimension, name, kind, contrast, test_name, testable=False)
    prep, note = _prepare(values, cols, weight, customer, contrast)
    if prep is None:
        return replace(base, note=note)
    delta = _observed(prep, _stratum_parts(prep))
    lab = prep.label > 0
    sizes = {
        "strata": prep.strata,
        "records_anomaly": int(prep.records[lab].sum()),
        "records_normal": int(prep.records[~lab].sum()),
        "customers_anomaly": int(len(np.unique(prep.customer[lab]))),
        "customers_normal": int(len(np.unique(prep.customer[~lab]))),
    }
    odds, odds_ci = math.nan, (math.nan, math.nan)
    if kind == "numeric":
        p = _stratified_permutation_p(prep)
    else:
        p, odds, odds_ci = _cmh(prep)
        if not math.isfinite(p):
            return replace(base, note="no segment has both values in both groups", **sizes)
    return replace(base, testable=True, delta=delta, p_value=p, odds_ratio=odds, odds_ratio_ci=odds_ci, **sizes)


def with_ci(test: TestResult, cols: _Columns, values: np.ndarray, weight: np.ndarray, customer: np.ndarray,
            counts: np.ndarray, settings: InferenceSettings) -> TestResult:
    """The test with its customer-bootstrap CI of delta."""
    prep, _ = _prepare(values, cols, weight, customer, test.contrast)
    if prep is None:
        return test
    lo, hi = _bootstrap_ci(prep, _stratum_parts(prep), counts, settings)
    return replace(test, ci_low=lo, ci_high=hi)


# ----------------------------------------------------------------------------------------- one grain
def customer_weights(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(customer code per record, 1 / records of that customer) — a customer counts once."""
    ids = text_column(frame, "customer_id").to_numpy(dtype=object)
    _, code, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return code, 1.0 / counts[code]


def _sample(frame: pd.DataFrame, settings: InferenceSettings) -> tuple[pd.DataFrame, bool]:
    """At most ``sample_size`` records, stratified by (segment, anomaly, direction); whole if small."""
    if len(frame) <= settings.sample_size:
        return frame, False
    seg = pd.factorize(frame["profitability_segment"], sort=True, use_na_sentinel=False)[0]
    direction = pd.factorize(frame["deviation_direction"], sort=True, use_na_sentinel=False)[0]
    key = (seg.astype(np.int64) * 2 + anomaly_mask(frame)) * (direction.max() + 1) + direction
    frac = settings.sample_size / len(frame)
    picks = []
    order = np.argsort(key, kind="mergesort")
    bounds = np.flatnonzero(np.r_[True, np.diff(key[order]) != 0, True])
    for i in range(len(bounds) - 1):
        idx = order[bounds[i] : bounds[i + 1]]
        n = max(min(len(idx), 30), int(round(len(idx) * frac)))
        rng = np.random.default_rng(settings.random_state + i)
        picks.append(np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False)))
    return frame.iloc[np.sort(np.concatenate(picks))], True


def _inputs(frame: pd.DataFrame, dimension: str, rules: Sequence[Rule], excluded: set[str]):
    spec = DIMENSIONS[dimension]
    for feature in spec["numeric"]:
        usable = feature not in excluded and feature in frame.columns  # excluded: constant, duplicate, band
        yield feature, "numeric", numeric_column(frame, feature) if usable else None
    for column in spec["categorical"]:
        if column in excluded or column not in frame.columns:
            if column not in frame.columns:
                yield column, "level", None
            continue
        text = text_column(frame, column)
        levels = sorted(set(text) - {"(missing)"})
        if len(levels) < 2:
            yield column, "level", None
            continue
        for level in levels:
            yield f"{column} = {level}", "level", (text == level).to_numpy(dtype=float)
    for rule in rules:
        if rule.feature in spec["numeric"] and rule.feature not in excluded and rule.feature in frame.columns:
            x = numeric_column(frame, rule.feature)
            op = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}[rule.operator]
            hit = np.where(np.isfinite(x), op(np.nan_to_num(x), rule.threshold), False)
            yield rule.name, "rule", hit.astype(float)


def min_detectable_delta(h: float, alpha: float, power: float) -> float:
    """|delta| detectable with ``power`` at two-sided ``alpha``: var(delta) ~ 1 / (3 h) under the null,
    h = sum over strata of n_a n_n / (n_a + n_n) (effective customer counts)."""
    if h <= 0:
        return math.nan
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(min(1.0, z * math.sqrt(1.0 / (3.0 * h))))


def infer_grain(
    frame: pd.DataFrame,
    grain: str,
    *,
    rules: Sequence[Rule] = (),
    excluded: Sequence[str] = (),
    settings: InferenceSettings | None = None,
    ci_for: frozenset[tuple[str, str, str]] = frozenset(),
) -> GrainInference:
    """Every within-segment test of every dimension on one grain's records. ``ci_for``: (dimension, input,
    contrast) keys that get a bootstrap CI besides the ones the verdict needs (the other grain's evidence).
    Long: every family of tests of one grain in one pass over the prepared frame (#9)."""
    settings = settings or InferenceSettings()
    full_mask = anomaly_mask(frame)
    ids = text_column(frame, "customer_id")
    data, sampled = _sample(frame.reset_index(drop=True), settings)
    data = data.reset_index(drop=True)
    customer, weight = customer_weights(data)
    counts = bootstrap_counts(int(customer.max()) + 1 if len(customer) else 0, settings, settings.random_state)
    cols = _Columns.of(data)
    # sizes of the anomaly-vs-normal comparison
    segment, anomaly = cols.segment, cols.anomaly
    strata = sorted(s for s in set(segment) if anomaly[segment == s].any() and (~anomaly[segment == s]).any())
    in_strata = np.isin(segment, strata)
    h = 0.0
    for s in strata:
        m = segment == s
        wa, wn = weight[m & anomaly].sum(), weight[m & ~anomaly].sum()
        h += wa * wn / (wa + wn)
    tests: dict[str, tuple[TestResult, ...]] = {}
    for dimension in DIMENSIONS:
        results, inputs = [], {}
        for name, kind, values in _inputs(data, dimension, rules, set(excluded)):
            inputs[name] = values
            for contrast in CONTRASTS:
                if values is None:
                    results.append(
                        TestResult(dimension, name, kind, contrast, "none", False,
                                   note="missing, constant, a duplicate column or the segment-defining feature")
                    )
                    continue
                results.append(run_test(dimension, name, kind, values, cols, weight, customer, contrast))
        results = list(_with_q_values(results))
        # bootstrap CIs for the tests that can decide the verdict: the best test (lowest q) and the best
        # ``settings.max_ci_tests`` with q < alpha and a non-negligible point estimate (a CI around a
        # negligible estimate cannot exclude the negligible band)
        ranked = sorted((i for i, t in enumerate(results) if t.testable), key=lambda i: _rank_key(results[i]))
        candidates = [i for i in ranked if results[i].q_value < settings.alpha
                      and abs(results[i].delta) >= NEGLIGIBLE]
        needs_ci = set(ranked[:1]) | set(candidates[: settings.max_ci_tests])
        needs_ci |= {i for i in ranked if (dimension, results[i].input, results[i].contrast) in ci_for}
        for i in sorted(needs_ci):
            t = results[i]
            results[i] = with_ci(t, cols, inputs[t.input], weight, customer, counts, settings)
        tests[dimension] = tuple(results)
    return GrainInference(
        grain=grain,
        records=int(len(frame)),
        customers=int(ids.nunique()),
        anomaly_records=int(full_mask.sum()),
        anomaly_customers=int(ids[full_mask].nunique()),
        strata=tuple(strata),
        records_in_strata=int(in_strata.sum()),
        customers_in_strata=int(len(np.unique(customer[in_strata]))),
        anomaly_customers_in_strata=int(len(np.unique(customer[in_strata & anomaly]))),
        mde=min_detectable_delta(h, settings.alpha, settings.power),
        sampled=sampled,
        sample_size=int(len(data)),
        tests=tests,
        anomaly_definition=anomaly_definition_sensitivity(frame, settings) if settings.anomaly_definition else {},
    )


def _with_q_values(results: list[TestResult]) -> tuple[TestResult, ...]:
    ps = np.array([r.p_value for r in results if r.testable], dtype=float)
    if not len(ps):
        return tuple(results)
    qs = iter(stats.false_discovery_control(ps, method="bh"))
    return tuple(replace(r, q_value=float(next(qs))) if r.testable else r for r in results)


# ----------------------------------------------------------------------------------------- verdicts
def _match(test: TestResult, other: GrainInference | None) -> TestResult | None:
    if other is None:
        return None
    for t in other.tests.get(test.dimension, ()):
        if (t.input, t.contrast) == (test.input, test.contrast):
            return t
    return None


def _rank_key(t: TestResult) -> tuple:
    return (t.q_value, -abs(t.delta), t.input, t.contrast)


def _best(tests: Sequence[TestResult]) -> TestResult:
    return sorted(tests, key=_rank_key)[0]


def decide(
    dimension: str,
    primary: GrainInference,
    other: GrainInference | None,
    settings: InferenceSettings | None = None,
) -> Verdict:
    """Four-state verdict of one dimension.

    - ``not_testable``: no input of the dimension can be tested (constant, missing, no segment with both).
    - ``supported``: a test with q < alpha whose delta CI excludes the negligible band, and the same test
      (input, contrast, sign) passes the same rule under the other grain.
    - ``inconclusive``: a test passes under one grain only (or the other grain is not available), or is
      significant with a CI reaching into the negligible band, or some CI still admits a medium effect
      (|bound| >= 0.33), or the minimum detectable effect is medium or larger: too little power to rule out.
    - ``not_supported``: everything else — every CI excludes medium effects and nothing passes.
    """
    settings = settings or InferenceSettings()
    tests = primary.tests.get(dimension, ())
    testable = [t for t in tests if t.testable]
    untestable = tuple(sorted({t.input for t in tests if not t.testable}))
    common = {"tests": len(tests), "testable_tests": len(testable), "untestable_inputs": untestable,
              "mde": primary.mde}
    if not testable:
        return Verdict(dimension, "not_testable", "no_testable_input", {}, None, **common)
    passing = [t for t in testable if t.passes(settings.alpha)]
    if passing:
        confirmed = []
        for t in passing:
            o = _match(t, other)
            if o is not None and o.passes(settings.alpha) and np.sign(o.delta) == np.sign(t.delta):
                confirmed.append((t, o))
        if confirmed:
            t, o = sorted(confirmed, key=lambda pair: (pair[0].q_value, -abs(pair[0].delta)))[0]
            return Verdict(dimension, "supported", "passes_both_grains", t.evidence(), o.evidence(), **common)
        t = _best(passing)
        o = _match(t, other)
        reason = "other_grain_not_available" if other is None else "fails_under_other_grain"
        return Verdict(dimension, "inconclusive", reason, t.evidence(), o.evidence() if o else None, **common)
    best = _best(testable)
    o = _match(best, other)
    other_ev = o.evidence() if o else None
    if any(math.isfinite(t.q_value) and t.q_value < settings.alpha for t in testable):
        return Verdict(dimension, "inconclusive", "significant_but_ci_includes_negligible", best.evidence(),
                       other_ev, **common)
    if not (-MEDIUM < best.ci_low and best.ci_high < MEDIUM):
        return Verdict(dimension, "inconclusive", "ci_admits_medium_effect", best.evidence(), other_ev, **common)
    if not math.isfinite(primary.mde) or primary.mde >= MEDIUM:
        return Verdict(dimension, "inconclusive", "underpowered", best.evidence(), other_ev, **common)
    return Verdict(dimension, "not_supported", "medium_effects_excluded", best.evidence(), other_ev, **common)


@dataclass(frozen=True)
class InferenceResult:
    primary: GrainInference
    other: GrainInference | None
    other_note: str
    verdicts: tuple[Verdict, ...]


def within_segment_inference(
    fit: pd.DataFrame,
    grain: str,
    *,
    other_grain_available: bool,
    rules: Sequence[Rule] = (),
    excluded: Sequence[str] = (),
    settings: InferenceSettings | None = None,
) -> InferenceResult:
    """Tests under the report's grain and under the other grain, and one verdict per dimension.

    ``grain == 'all'``: the other grain (latest) is derived here from the same records. ``grain ==
    'latest'``: the all-grain records are not in the warehouse; when the grain dropped no record
    (``other_grain_available``) both grains are the same records, otherwise the cross-grain check is not
    possible and no verdict can be ``supported``."""
    settings = settings or InferenceSettings()
    primary = infer_grain(fit, grain, rules=rules, excluded=excluded, settings=settings)
    if grain == "all":
        with_ci = frozenset(
            (d, t.input, t.contrast) for d, ts in primary.tests.items() for t in ts if math.isfinite(t.ci_low)
        )
        other = infer_grain(  # the anomaly-definition sensitivity is reported for the report's grain only
            latest_records(fit), "latest", rules=rules, excluded=excluded,
            settings=replace(settings, anomaly_definition=False), ci_for=with_ci,
        )
        note = "latest grain derived from the same records (one per customer, the README's rule)"
    elif other_grain_available:
        other = replace(primary, grain="all")
        note = "the latest grain dropped no record, so both grains hold the same records"
    else:
        other = None
        note = ("the all-grain records are not in a latest-grain warehouse; build with --grain all to check "
                "both grains (no verdict can be supported without it)")
    verdicts = tuple(decide(d, primary, other, settings) for d in DIMENSIONS)
    return InferenceResult(primary, other, note, verdicts)


def rules_from_mart(anomaly_rule_lift: pd.DataFrame | None) -> tuple[Rule, ...]:
    """The rules of the ``anomaly_rule_lift`` mart (feature, operator, threshold)."""
    if anomaly_rule_lift is None or not len(anomaly_rule_lift):
        return ()
    out = []
    for row in anomaly_rule_lift.itertuples(index=False):
        op = str(getattr(row, "operator", ">")).strip()
        thr = pd.to_numeric(getattr(row, "threshold", math.nan), errors="coerce")
        if op in {">", ">=", "<", "<="} and pd.notna(thr):
            out.append(Rule(str(row.feature_name), op, float(thr)))
    return tuple(sorted(set(out), key=lambda r: (r.feature, r.operator, r.threshold)))


def verdict_table(result: InferenceResult) -> list[dict[str, object]]:
    """Rows for the metrics / report: dimension, verdict, reason, evidence under each grain."""
    return [
        {
            "dimension": v.dimension,
            "verdict": v.verdict,
            "reason": v.reason,
            "evidence": v.evidence,
            "other_grain_evidence": v.other_grain,
            "mde": v.mde,
            "tests": v.tests,
            "testable_tests": v.testable_tests,
            "untestable_inputs": list(v.untestable_inputs),
        }
        for v in result.verdicts
    ]


def grain_summary(g: GrainInference) -> dict[str, object]:
    return {
        "grain": g.grain,
        "records": g.records,
        "customers": g.customers,
        "anomaly_records": g.anomaly_records,
        "anomaly_customers": g.anomaly_customers,
        "segments_with_both": list(g.strata),
        "records_in_comparison": g.records_in_strata,
        "customers_in_comparison": g.customers_in_strata,
        "anomaly_customers_in_comparison": g.anomaly_customers_in_strata,
        "min_detectable_delta": g.mde,
        "sampled": g.sampled,
        "sample_records": g.sample_size,
        "inputs": input_status(g),
        "anomaly_definition": g.anomaly_definition,
    }


def input_status(g: GrainInference) -> list[dict[str, object]]:
    """One row per (dimension, input): ``testable`` when at least one of its contrasts could be tested, else
    ``not_testable`` with the reason (constant, missing, duplicate or segment-defining column; no segment with
    both groups)."""
    rows = []
    for dimension, tests in g.tests.items():
        seen: dict[str, list[TestResult]] = {}
        for t in tests:
            seen.setdefault(t.input, []).append(t)
        for name, group in seen.items():
            testable = any(t.testable for t in group)
            notes = sorted({t.note for t in group if t.note and not t.testable})
            rows.append({"dimension": dimension, "input": name, "kind": group[0].kind,
                         "status": "testable" if testable else "not_testable", "note": "; ".join(notes)})
    return rows


def tests_table(g: GrainInference) -> list[Mapping[str, object]]:
    rows = []
    for dimension, tests in g.tests.items():
        for t in tests:
            rows.append({"dimension": dimension, "testable": t.testable, **t.evidence()})
    return rows


# ----------------------------------------------------------------------------------------- re-segmentation
@dataclass(frozen=True)
class Resegmentation:
    """Split every segment by the candidate input (numeric: at the segment's median; level or rule: hit vs
    not), recompute the (sub-)segment means and flags, and compare with a null that permutes the input
    within each segment. R^2 = share of the retention variance explained by the (sub-)segment means."""

    dimension: str
    input: str
    records: int
    anomalies_before: int
    anomalies_after: int
    r2_before: float
    r2_after: float
    r2_gain: float
    null_r2_gain_mean: float
    p_value: float  # P(null gain >= observed gain)
    anomaly_change: int
    null_anomaly_change_mean: float
    permutations: int


def _flags(retention: np.ndarray, codes: np.ndarray, threshold: float, mode: str) -> tuple[np.ndarray, float]:
    """(anomaly flags, R^2) for the groups ``codes`` (B, n) or (n,)."""
    codes = np.atleast_2d(codes)
    b, n = codes.shape
    k = int(codes.max()) + 1
    flat = (np.arange(b)[:, None] * k + codes).ravel()
    sums = np.bincount(flat, weights=np.tile(retention, b), minlength=b * k).reshape(b, k)
    counts = np.bincount(flat, minlength=b * k).reshape(b, k)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    fitted = np.take_along_axis(means, codes, axis=1)
    deviation = np.round(retention[None, :] - fitted, 10)
    if mode == "relative":
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.round(np.abs(deviation) / np.where(fitted != 0, fitted, np.nan), 10)
        flags = np.nan_to_num(ratio, nan=0.0) > threshold
    elif mode == "zscore":
        squares = np.bincount(flat, weights=(retention[None, :] - fitted).ravel() ** 2, minlength=b * k)
        with np.errstate(divide="ignore", invalid="ignore"):
            sd = np.sqrt(squares.reshape(b, k) / (counts - 1))
            sd_of = np.take_along_axis(np.where(counts > 1, sd, np.nan), codes, axis=1)
            ratio = np.round(np.abs(retention[None, :] - fitted) / np.where(sd_of > 0, sd_of, np.nan), 10)
        flags = np.nan_to_num(ratio, nan=0.0) > threshold
    else:
        flags = np.abs(deviation) > threshold
    total = float(np.sum((retention - retention.mean()) ** 2))
    r2 = 1 - np.sum((retention[None, :] - fitted) ** 2, axis=1) / total if total > 0 else np.zeros(b)
    return flags, r2


def resegment(
    frame: pd.DataFrame, dimension: str, name: str, values: np.ndarray | None, settings: InferenceSettings
) -> Resegmentation | None:
    """The re-segmentation simulation for one candidate input (None when it cannot be run)."""
    retention = numeric_column(frame, "retention_probability")
    segment = text_column(frame, "profitability_segment").to_numpy(dtype=object)
    if values is None or len(frame) < 4 or not np.isfinite(retention).all():
        return None
    x = np.asarray(values, dtype=float)
    seg_codes = np.unique(segment, return_inverse=True)[1]
    split = np.zeros(len(x), dtype=np.int64)
    for s in range(int(seg_codes.max()) + 1):
        m = seg_codes == s
        finite = m & np.isfinite(x)
        if finite.any():
            binary = np.isin(x[finite], (0.0, 1.0)).all()
            cut = 0.5 if binary else np.median(x[finite])
            split[finite] = (x[finite] > cut).astype(np.int64)
    threshold = float(numeric_column(frame, "anomaly_threshold")[0])
    modes = text_column(frame, "anomaly_threshold_mode").unique()
    mode = str(modes[0]) if len(modes) else "absolute"
    before_flags, r2_before = _flags(retention, seg_codes, threshold, mode)
    after_flags, r2_after = _flags(retention, seg_codes * 2 + split, threshold, mode)
    rng = np.random.default_rng(settings.random_state)
    b = settings.resegmentation_permutations
    perm = np.tile(split, (b, 1))
    for s in range(int(seg_codes.max()) + 1):
        pos = np.flatnonzero(seg_codes == s)
        perm[:, pos] = rng.permuted(perm[:, pos], axis=1)
    null_flags, null_r2 = _flags(retention, seg_codes[None, :] * 2 + perm, threshold, mode)
    gain = float(r2_after[0] - r2_before[0])
    null_gain = null_r2 - r2_before[0]
    return Resegmentation(
        dimension=dimension,
        input=name,
        records=int(len(x)),
        anomalies_before=int(before_flags.sum()),
        anomalies_after=int(after_flags.sum()),
        r2_before=float(r2_before[0]),
        r2_after=float(r2_after[0]),
        r2_gain=gain,
        null_r2_gain_mean=float(null_gain.mean()),
        p_value=float((1 + np.sum(null_gain >= gain - 1e-12)) / (b + 1)),
        anomaly_change=int(after_flags.sum() - before_flags.sum()),
        null_anomaly_change_mean=float(null_flags.sum(axis=1).mean() - before_flags.sum()),
        permutations=b,
    )


def resegmentations(
    fit: pd.DataFrame, result: InferenceResult, rules: Sequence[Rule] = (), excluded: Sequence[str] = (),
    settings: InferenceSettings | None = None,
) -> dict[str, Resegmentation | None]:
    """The simulation for each dimension's evidence input (on at most ``sample_size`` records)."""
    settings = settings or InferenceSettings()
    data, _ = _sample(fit.reset_index(drop=True), settings)
    data = data.reset_index(drop=True)
    out: dict[str, Resegmentation | None] = {}
    for v in result.verdicts:
        name = v.evidence.get("input") if v.evidence else None
        values = None
        if name:
            values = dict((n, val) for n, _, val in _inputs(data, v.dimension, rules, set(excluded))).get(name)
        out[v.dimension] = resegment(data, v.dimension, str(name), values, settings) if name else None
    return out


# ----------------------------------------------------------------------------------------- anomaly definition
SWEEP = tuple(round(0.10 + 0.01 * i, 2) for i in range(11))  # absolute thresholds 0.10 .. 0.20
Z_CUTS = (1.0, 1.5, 2.0)  # |deviation| / segment SD
MAD_Z_CUTS = (2.0, 3.5)  # 0.6745 |x - median| / MAD (Iglewicz-Hoaglin; 3.5 is their outlier cut)
GMM_SAMPLE = 1000  # records per segment for the bimodality check (a stated sample)
GMM_MIN_RECORDS = 10


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.sum(a | b))
    return float(np.sum(a & b) / union) if union else 1.0


def anomaly_definition_sensitivity(frame: pd.DataFrame, settings: InferenceSettings | None = None) -> dict:
    """How much the anomaly set depends on its definition, on every record of the grain.

    Per segment: records, anomalies, share flagged, retention SD (ddof 1) and IQR, and a bimodality check (1- vs
    2-component ``GaussianMixture`` on retention, BIC; two populations when the 2-component BIC is lower by
    more than 10) on at most 1,000 records per segment; ``two_retention_populations`` when most (> 50 %) of the segment is
    flagged. Overall: the flagged set under absolute thresholds 0.10-0.20, under |deviation| / segment SD > z
    and under the robust MAD z > z, each as its size and Jaccard overlap with the build's flags.
    Long: the per-segment and per-definition tables share one pass (#9)."""
    from sklearn.mixture import GaussianMixture

    settings = settings or InferenceSettings()
    if not len(frame) or "retention_probability" not in frame.columns:
        return {}
    segment = text_column(frame, "profitability_segment").to_numpy(dtype=object)
    retention = numeric_column(frame, "retention_probability")
    flags = anomaly_mask(frame)
    inverse, codes = pd.factorize(segment, sort=True)
    s = pd.Series(retention)
    by = s.groupby(inverse)
    mean = by.transform("mean").to_numpy()
    sd = by.transform("std").to_numpy()
    median = by.transform("median").to_numpy()
    mad = pd.Series(np.abs(retention - median)).groupby(inverse).transform("median").to_numpy()
    deviation = np.round(retention - mean, 10)
    rows = []
    for k, name in enumerate(codes):
        x = retention[inverse == k]
        x = x[np.isfinite(x)]
        n_flag = int(flags[inverse == k].sum())
        row = {"segment": str(name), "records": int(len(x)), "anomalies": n_flag,
               "share_flagged": n_flag / len(x) if len(x) else math.nan,
               "retention_sd": float(np.std(x, ddof=1)) if len(x) > 1 else math.nan,
               "retention_iqr": float(np.subtract(*np.percentile(x, [75, 25]))) if len(x) else math.nan,
               "bic_1": math.nan, "bic_2": math.nan, "bimodal": False}
        if len(x) >= GMM_MIN_RECORDS and np.ptp(x) > 0:
            rng = np.random.default_rng(settings.random_state + k)
            xs = np.sort(rng.choice(x, GMM_SAMPLE, replace=False)) if len(x) > GMM_SAMPLE else x
            xs = xs.reshape(-1, 1)
            bic = [GaussianMixture(c, random_state=settings.random_state).fit(xs).bic(xs) for c in (1, 2)]
            row.update({"bic_1": float(bic[0]), "bic_2": float(bic[1]), "bimodal": bool(bic[1] < bic[0] - 10)})
        row["two_retention_populations"] = bool(len(x) and n_flag / len(x) > 0.5)
        rows.append(row)
    definitions = []
    for t in SWEEP:
        alt = np.abs(deviation) > t
        definitions.append({"definition": f"absolute > {t:.2f}", "kind": "absolute", "cut": t,
                            "anomalies": int(alt.sum()), "jaccard": _jaccard(alt, flags)})
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(retention - mean) / np.where(sd > 0, sd, np.nan)
        robust = 0.6745 * np.abs(retention - median) / np.where(mad > 0, mad, np.nan)
    for cut in Z_CUTS:
        alt = np.nan_to_num(np.round(z, 10), nan=0.0) > cut
        definitions.append({"definition": f"|deviation| / segment SD > {cut:g}", "kind": "zscore", "cut": cut,
                            "anomalies": int(alt.sum()), "jaccard": _jaccard(alt, flags)})
    for cut in MAD_Z_CUTS:
        alt = np.nan_to_num(np.round(robust, 10), nan=0.0) > cut
        definitions.append({"definition": f"robust MAD z > {cut:g}", "kind": "mad_z", "cut": cut,
                            "anomalies": int(alt.sum()), "jaccard": _jaccard(alt, flags)})
    return {
        "records": int(len(frame)),
        "anomalies": int(flags.sum()),
        "segments": rows,
        "definitions": definitions,
        "two_population_segments": [r["segment"] for r in rows if r["two_retention_populations"]],
        "bimodal_segments": [r["segment"] for r in rows if r["bimodal"]],
    }


def within_segment_with_resegmentation(
    fit: pd.DataFrame, grain: str, *, other_grain_available: bool, rule_lift: pd.DataFrame | None,
    excluded: Sequence[str], random_state: int,
) -> tuple[InferenceResult, dict[str, Resegmentation | None]]:
    """The report's within-segment tests (``within_segment_inference``) and the re-segmentation simulation per
    dimension (``resegmentations``), seeded by ``random_state`` alone: one call that the report may run in its
    helper process (``python_analysis.worker``)."""
    settings = InferenceSettings(random_state=random_state)
    rules = rules_from_mart(rule_lift)
    result = within_segment_inference(
        fit, grain, other_grain_available=other_grain_available, rules=rules, excluded=excluded, settings=settings
    )
    return result, resegmentations(fit, result, rules, excluded, settings)
