"""The stated analysis sample: when the data is large, the heavy resampling runs on a stratified sample of
whole customers, and the report says so.

Above ``ReportConfig.analysis_sample_threshold`` records, the within-segment tests (with their customer
bootstraps and permutations), the re-segmentation simulation and every decision tree (repeated grouped CV,
the grouped assessment, the calibrated write-back's folds) run on about ``analysis_sample_size`` records.
Descriptive figures stay over every record: the segment summaries, the feature comparison, the rule lift
and crosstabs are computed in SQL by the marts, and the data profile, the segment bands and the anomaly
list read the whole fit mart. At or below the threshold nothing is sampled, so small data (the shared
extract, the demo) is analysed exactly as before.

Sampling unit: the customer (all of a customer's records are kept together, so grouped CV and customer
bootstraps stay valid). Strata: profitability segment x "has an anomaly record" of the customer (a
customer's segment is that of its first record by ``customer_record_id``). Every stratum keeps
``ceil(size * stratum_records / all_records)`` records' worth of customers, at least one customer, so a
rare anomaly group of a small segment is never lost. Customers are drawn with a seeded generator: the same
fit mart and seed give the same sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .analysis import anomaly_mask, text_column
from .config import ReportConfig

METHOD = ("customers drawn at random (seeded) within strata of profitability segment x has-an-anomaly-record, "
          "each stratum in proportion to its records (at least one customer); all records of a drawn customer kept")


@dataclass(frozen=True)
class AnalysisSample:
    """Which records the heavy statistics use. ``positions`` index the fit mart (sorted)."""

    sampled: bool
    records: int
    customers: int
    anomaly_records: int
    anomaly_customers: int
    population_records: int
    population_customers: int
    threshold: int
    target_size: int
    positions: np.ndarray
    strata: pd.DataFrame = field(default_factory=pd.DataFrame)  # segment, has_anomaly, customers/records
    cv_repeats: int | None = None  # repeats of the repeated grouped CV on the sample (None: not sampled)
    full_cv_repeats: int | None = None  # the repeats small (unsampled) data gets

    def to_dict(self) -> dict[str, Any]:
        """metrics.json ``analysis_sample``: what was sampled, from what, and how."""
        return {
            "sampled": self.sampled,
            "records": self.records,
            "customers": self.customers,
            "anomaly_records": self.anomaly_records,
            "anomaly_customers": self.anomaly_customers,
            "population_records": self.population_records,
            "population_customers": self.population_customers,
            "threshold_records": self.threshold,
            "target_records": self.target_size,
            "method": METHOD if self.sampled else "every record (at or below the threshold)",
            "applies_to": list(SAMPLED_PARTS) if self.sampled else [],
            "every_record": list(EVERY_RECORD_PARTS),
            "strata": self.strata,
            "cv_repeats": self.cv_repeats,
        }


SAMPLED_PARTS = ("within-segment tests and verdicts", "anomaly-definition sensitivity", "re-segmentation simulation",
                 "segment tree", "anomaly models (repeated grouped CV, grouped assessment, calibration)",
                 "KMeans fit (on as many anomaly records as the sample holds)")
EVERY_RECORD_PARTS = ("segment summaries", "feature comparison", "rule lift", "crosstabs", "data profile and bands",
                      "anomaly list and cluster assignments", "written-back anomaly_probability (every record scored)")


def _customer_codes(fit: pd.DataFrame) -> tuple[np.ndarray, int]:
    """(each record's customer code, the number of customers); codes number the customer keys in sorted order
    (as ``np.unique(keys, return_inverse=True)``), factorized on the (Arrow) strings: no Python string per record."""
    column = "customer_id" if "customer_id" in fit.columns else "customer_record_id"
    codes, uniques = pd.factorize(text_column(fit, column, missing=""), sort=True)
    return codes.astype(np.intp, copy=False), len(uniques)


def is_large(records: int, config: ReportConfig) -> bool:
    """Is a fit mart of ``records`` records sampled (``analysis_sample``): more than
    ``analysis_sample_threshold``?"""
    return records > config.analysis_sample_threshold


def analysis_sample(fit: pd.DataFrame, config: ReportConfig) -> AnalysisSample:
    """The stated sample of ``fit`` (every record when ``len(fit) <= config.analysis_sample_threshold``)."""
    n = len(fit)
    y = anomaly_mask(fit) if n else np.zeros(0, dtype=bool)
    inverse, n_customers = _customer_codes(fit) if n else (np.zeros(0, dtype=np.intp), 0)
    if not is_large(n, config):
        return AnalysisSample(False, n, n_customers, int(y.sum()), _anomaly_customers(inverse, y), n, n_customers,
                              config.analysis_sample_threshold, config.analysis_sample_size, np.arange(n))
    segment = text_column(fit, "profitability_segment", missing="(missing)").to_numpy(dtype=object)
    record_ids = text_column(fit, "customer_record_id", missing="")
    has_anomaly = np.bincount(inverse, weights=y.astype(float), minlength=n_customers) > 0
    records_per_customer = np.bincount(inverse, minlength=n_customers)
    customer_segment = np.empty(n_customers, dtype=object)
    single = records_per_customer[inverse] == 1
    customer_segment[inverse[single]] = segment[single]
    multi = np.flatnonzero(~single)  # customers with copies: the segment of the smallest customer_record_id
    if len(multi):
        first = multi[np.lexsort((record_ids.iloc[multi].to_numpy(dtype=object), inverse[multi]))]
        first = first[np.r_[True, inverse[first][1:] != inverse[first][:-1]]]
        customer_segment[inverse[first]] = segment[first]
    strata = pd.DataFrame({"profitability_segment": customer_segment, "has_anomaly": has_anomaly,
                           "records": records_per_customer})
    rng = np.random.default_rng(config.random_state)
    keep = np.zeros(n_customers, dtype=bool)
    rows = []
    for (seg, flag), members in strata.groupby(["profitability_segment", "has_anomaly"], sort=True).groups.items():
        members = np.sort(np.asarray(members))
        order = members[rng.permutation(len(members))]
        stratum_records = int(records_per_customer[members].sum())
        quota = int(np.ceil(config.analysis_sample_size * stratum_records / n))
        taken_records = np.cumsum(records_per_customer[order])
        take = max(1, int(np.searchsorted(taken_records, quota, side="left")) + 1)
        chosen = order[: min(take, len(order))]
        keep[chosen] = True
        rows.append({"profitability_segment": seg, "has_anomaly": bool(flag),
                     "population_customers": len(members), "population_records": stratum_records,
                     "sample_customers": len(chosen), "sample_records": int(records_per_customer[chosen].sum())})
    positions = np.flatnonzero(keep[inverse])
    return AnalysisSample(
        sampled=True, records=len(positions), customers=int(keep.sum()), anomaly_records=int(y[positions].sum()),
        anomaly_customers=int((keep & has_anomaly).sum()), population_records=n, population_customers=n_customers,
        threshold=config.analysis_sample_threshold, target_size=config.analysis_sample_size, positions=positions,
        strata=pd.DataFrame(rows), cv_repeats=sampled_cv_repeats(config), full_cv_repeats=config.cv_repeats,
    )


def sampled_cv_repeats(config: ReportConfig) -> int:
    """Repeats of the repeated grouped CV when the data is sampled: fewer than on small data (the sample's CV
    rests on as many records as a small data set's), stated in the report."""
    return max(1, min(config.cv_repeats, config.sampled_cv_repeats))


def _anomaly_customers(inverse: np.ndarray, y: np.ndarray) -> int:
    if not len(y):
        return 0
    return int((np.bincount(inverse, weights=y.astype(float)) > 0).sum())


def sample_sentence(sample: AnalysisSample) -> str | None:
    """The report's statement of the sample (None when nothing was sampled)."""
    if not sample.sampled:
        return None
    return (f"The data is large ({sample.population_records:,} records of {sample.population_customers:,} customers, "
            f"above {sample.threshold:,}), so the within-segment tests, verdicts, re-segmentation, and every decision "
            f"tree and its cross-validation are computed on a stratified sample of {sample.records:,} records of "
            f"{sample.customers:,} whole customers ({sample.anomaly_customers:,} with an anomaly record): "
            f"{METHOD}. The repeated grouped cross-validation uses {_repeats(sample)}. KMeans is fitted on as many anomaly records as the sample holds. Segment summaries, the feature "
            "comparison, rule lift, crosstabs, the data profile and bands, the anomaly list and the cluster assignments "
            "use every record; every record is scored in the written-back anomaly_probability.")


def _repeats(sample: AnalysisSample) -> str:
    repeats = f"{sample.cv_repeats} repeat{'s' if sample.cv_repeats != 1 else ''}"
    if sample.full_cv_repeats is not None and sample.full_cv_repeats != sample.cv_repeats:
        return f"{repeats} ({sample.full_cv_repeats} on data at or below the threshold)"
    return repeats
