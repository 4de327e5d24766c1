"""Repeated, customer-grouped, stratified cross-validation of the anomaly models (scikit-learn).

Every repeat reshuffles a stratified k-fold split of the *customers* (``StratifiedKFold`` on one row per
customer, stratified by "has an anomaly record"), expanded to the customers' records, so no customer's
copies sit on both sides of a split (the aim of ``StratifiedGroupKFold``, without its per-group
Python loop, which takes minutes at 10,000 customers). The splits depend only on (labels, groups, seed), so every model
is scored on the same splits and model - baseline differences are paired split by split.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.metrics import average_precision_score, balanced_accuracy_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

SCORING = {
    "roc_auc": "roc_auc",
    "pr_auc": "average_precision",
    "balanced_accuracy": "balanced_accuracy",
    "brier": "neg_brier_score",
}


@dataclass(frozen=True)
class RepeatedCV:
    repeats: int
    folds: int
    n_records: int
    n_customers: int
    sampled: bool
    scores: dict[str, list[float]] = field(default_factory=dict)  # metric -> one value per split
    note: str = ""

    def summary(self) -> dict[str, dict[str, float]]:
        """metric -> {mean, sd} over all splits (SD with ddof=1)."""
        out = {}
        for name, values in self.scores.items():
            v = np.asarray(values, dtype=float)
            v = v[np.isfinite(v)]
            out[name] = {
                "mean": float(v.mean()) if len(v) else math.nan,
                "sd": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
            }
        return out


def split_scores(model, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The ``SCORING`` metrics of a fitted classifier on one held-out split (Brier as a loss), from one
    ``predict_proba``: the values ``cross_validate`` with those scorers gives (it predicts once per scorer), NaN
    where a metric is undefined (e.g. a split without both classes)."""
    classes = list(model.classes_)
    if True not in classes:
        return dict.fromkeys(SCORING, math.nan)
    proba = model.predict_proba(X)
    p = proba[:, classes.index(True)]
    predicted = model.classes_[np.argmax(proba, axis=1)]
    metrics = {"roc_auc": lambda: roc_auc_score(y, p), "pr_auc": lambda: average_precision_score(y, p),
               "balanced_accuracy": lambda: balanced_accuracy_score(y, predicted), "brier": lambda: brier_score_loss(y, p)}
    out = {}
    for name, metric in metrics.items():
        try:
            out[name] = float(metric())
        except ValueError:
            out[name] = math.nan
    return out


def paired_difference(model: RepeatedCV, baseline: RepeatedCV, metric: str = "roc_auc") -> dict[str, float]:
    """Split-by-split model - baseline: mean, SD and the 2.5 / 97.5 percentiles over the splits."""
    a = np.asarray(model.scores.get(metric, []), dtype=float)
    b = np.asarray(baseline.scores.get(metric, []), dtype=float)
    if len(a) == 0 or len(a) != len(b):
        return {"mean": math.nan, "sd": math.nan, "p2_5": math.nan, "p97_5": math.nan, "splits": 0}
    d = a - b
    d = d[np.isfinite(d)]
    if not len(d):
        return {"mean": math.nan, "sd": math.nan, "p2_5": math.nan, "p97_5": math.nan, "splits": 0}
    return {
        "mean": float(d.mean()),
        "sd": float(d.std(ddof=1)) if len(d) > 1 else math.nan,
        "p2_5": float(np.percentile(d, 2.5)),
        "p97_5": float(np.percentile(d, 97.5)),
        "splits": int(len(d)),
    }


def customer_sample(y: np.ndarray, groups: np.ndarray, max_rows: int, random_state: int) -> np.ndarray:
    """Positions of whole customers, at most about ``max_rows`` records, drawn separately from customers
    with and without an anomaly record (every record when the data is small)."""
    if len(y) <= max_rows:
        return np.arange(len(y))
    rng = np.random.default_rng(random_state)
    codes, inverse = np.unique(groups, return_inverse=True)
    has_anomaly = np.bincount(inverse, weights=y.astype(float), minlength=len(codes)) > 0
    share = max_rows / len(y)
    keep = np.zeros(len(codes), dtype=bool)
    for flag in (True, False):
        members = np.flatnonzero(has_anomaly == flag)
        take = min(len(members), max(1, int(round(len(members) * share))))
        keep[rng.choice(members, size=take, replace=False)] = True
    return np.flatnonzero(keep[inverse])


def grouped_stratified_splits(
    y: np.ndarray, groups: np.ndarray, folds: int, random_state: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) record positions: a shuffled StratifiedKFold over customers (label: has an anomaly
    record), each customer's records kept together."""
    codes, inverse = np.unique(groups, return_inverse=True)
    has_anomaly = np.bincount(inverse, weights=y.astype(float), minlength=len(codes)) > 0
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    out = []
    for _, test_customers in skf.split(np.zeros(len(codes)), has_anomaly):
        in_test = np.zeros(len(codes), dtype=bool)
        in_test[test_customers] = True
        test = in_test[inverse]
        out.append((np.flatnonzero(~test), np.flatnonzero(test)))
    return out


def repeated_grouped_cv(
    estimator, X: np.ndarray, y: np.ndarray, groups: np.ndarray, *, folds: int, repeats: int,
    random_state: int, max_rows: int,
) -> RepeatedCV | None:
    """ROC-AUC, PR-AUC, balanced accuracy and Brier score over ``repeats`` x ``folds`` grouped splits.

    Folds shrink to the number of customers with (or without) an anomaly record; None below 2."""
    y = np.asarray(y, dtype=bool)
    idx = customer_sample(y, groups, max_rows, random_state)
    sampled = len(idx) < len(y)
    X, y, groups = X[idx], y[idx], groups[idx]
    _, inverse = np.unique(groups, return_inverse=True)
    has_anomaly = np.bincount(inverse, weights=y.astype(float)) > 0
    k = min(folds, int(has_anomaly.sum()), int((~has_anomaly).sum()))
    if k < 2:
        return None
    scores: dict[str, list[float]] = {name: [] for name in SCORING}
    for r in range(repeats):
        for train, test in grouped_stratified_splits(y, groups, k, random_state + r):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a fold without positives scores NaN; summarised without it
                for name, value in split_scores(clone(estimator).fit(X[train], y[train]), X[test], y[test]).items():
                    scores[name].append(value)
    return RepeatedCV(
        repeats=repeats,
        folds=k,
        n_records=int(len(y)),
        n_customers=int(len(np.unique(groups))),
        sampled=sampled,
        scores=scores,
        note=f"{repeats} x {k}-fold stratified CV grouped by customer_id on {len(y)} records"
        + (" (a sample of whole customers, drawn separately with and without anomalies)" if sampled else ""),
    )
