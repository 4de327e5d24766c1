"""Honest uncertainty for the anomaly models (scikit-learn), on customer-grouped, stratified folds.

Everything here runs on one stated sample of whole customers (``validation.customer_sample``: at most
``max_rows`` records, drawn separately from customers with and without an anomaly record) and on the same
grouped folds for every model, so differences are paired:

- out-of-fold ROC-AUC, PR-AUC, balanced accuracy and Brier for the fair tree, the segment-only baseline, an
  L2 logistic regression (``Pipeline``: median imputer + scaler fitted inside each fold) and the tree whose
  ``max_depth`` is tuned by nested CV (``GridSearchCV`` on inner grouped folds);
- a paired customer-bootstrap CI of each model's ROC-AUC minus the baseline's (resampling customers, out-of-fold
  predictions held fixed);
- within-segment ROC-AUC (the baseline is 0.5 there by construction: it only knows the segment);
- grouped permutation importance on the held-out folds (columns of one source, and sources correlated with
  |Spearman| >= ``corr_group``, are permuted together);
- calibration: reliability-curve data (``sklearn.calibration.calibration_curve``) of the raw tree and of the
  ``CalibratedClassifierCV`` tree (sigmoid, inner grouped folds);
- leakage by provenance: every single source's out-of-fold ROC-AUC (numeric: the value itself, no fitting;
  categorical: level rates learnt on the training folds); any >= ``leak_auc`` is flagged.

Numbers only; the report writes the sentences.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV, calibration_curve
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, balanced_accuracy_score, brier_score_loss
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from .validation import grouped_stratified_splits


@dataclass(frozen=True)
class AssessmentSettings:
    folds: int = 5
    inner_folds: int = 3
    depths: tuple[int, ...] = (2, 3, 4, 5, 6)
    bootstrap: int = 500
    bins: int = 10
    max_rows: int = 4000
    leak_auc: float = 0.99
    corr_group: float = 0.9
    permutation_repeats: int = 5
    random_state: int = 0


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        return math.nan
    return float(weighted_auc(y, np.asarray(p, dtype=float), np.ones(len(y)))[0])


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, balanced accuracy (cut 0.5) and Brier of out-of-fold probabilities."""
    y = np.asarray(y, dtype=bool)
    both = bool(y.any() and not y.all())
    return {
        "roc_auc": _auc(y, p),
        "pr_auc": float(average_precision_score(y, p)) if both else math.nan,
        "balanced_accuracy": float(balanced_accuracy_score(y, p >= 0.5)) if both else math.nan,
        "brier": float(brier_score_loss(y, p)),
    }


def weighted_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC for each row of ``weights`` (B, n) (ties count one half): the Mann-Whitney form, vectorised."""
    order = np.argsort(p, kind="mergesort")
    ps, ys = p[order], y[order].astype(float)
    w = np.atleast_2d(weights)[:, order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    pos = np.add.reduceat(w * ys, starts, axis=1)
    neg = np.add.reduceat(w * (1 - ys), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    num = np.sum(pos * (below + 0.5 * neg), axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def paired_bootstrap(y, p_model, p_base, groups, settings: AssessmentSettings) -> dict[str, float]:
    """Customer-bootstrap percentile 95 % CI of ROC-AUC(model) - ROC-AUC(baseline), predictions fixed (the same
    resamples of customers for both)."""
    codes, inverse = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(settings.random_state)
    mult = rng.multinomial(len(codes), np.full(len(codes), 1.0 / len(codes)), size=settings.bootstrap)[:, inverse]
    diffs = weighted_auc(y, p_model, mult) - weighted_auc(y, p_base, mult)
    diffs = diffs[np.isfinite(diffs)]
    observed = _auc(y, p_model) - _auc(y, p_base)
    if len(diffs) < 0.9 * settings.bootstrap:
        return {"difference": observed, "ci_low": math.nan, "ci_high": math.nan, "resamples": int(len(diffs))}
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"difference": float(observed), "ci_low": float(lo), "ci_high": float(hi), "resamples": int(len(diffs))}


def within_segment_auc(y, p, segment) -> dict[str, object]:
    """ROC-AUC inside each segment holding both classes, and their mean weighted by records."""
    rows, total, weight = [], 0.0, 0
    for s in sorted(set(segment)):
        m = segment == s
        a = _auc(y[m], p[m])
        if math.isfinite(a):
            rows.append({"segment": str(s), "records": int(m.sum()), "anomalies": int(y[m].sum()), "roc_auc": a})
            total += a * int(m.sum())
            weight += int(m.sum())
    return {"by_segment": rows, "weighted_mean": total / weight if weight else math.nan}


def correlated_groups(X_raw: np.ndarray, sources: Sequence[str], threshold: float) -> list[list[str]]:
    """Sources grouped by single linkage on |Spearman| >= threshold (each source once, in order)."""
    names = list(dict.fromkeys(sources))
    if len(names) < 2:
        return [names]
    rho = pd.DataFrame(X_raw).corr(method="spearman").abs().fillna(0.0).to_numpy()
    parent = list(range(len(names)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if rho.shape == (len(names), len(names)) and rho[i, j] >= threshold:
                parent[find(j)] = find(i)
    groups: dict[int, list[str]] = {}
    for i, name in enumerate(names):
        groups.setdefault(find(i), []).append(name)
    return list(groups.values())


def single_feature_auc(frame_values: dict[str, np.ndarray], kinds: dict[str, str], y, splits) -> list[dict]:
    """Out-of-fold ROC-AUC of each source alone (max(AUC, 1 - AUC)); numeric: the value (missing = median of the
    training fold), categorical: the level's anomaly rate on the training folds."""
    rows = []
    for name, values in frame_values.items():
        oof = np.zeros(len(y))
        for train, test in splits:
            if kinds[name] == "numeric":
                med = np.nanmedian(values[train]) if np.isfinite(values[train]).any() else 0.0
                oof[test] = np.where(np.isfinite(values[test]), values[test], med)
            else:
                rates = pd.Series(y[train].astype(float)).groupby(values[train]).mean()
                oof[test] = pd.Series(values[test]).map(rates).fillna(y[train].mean()).to_numpy(dtype=float)
        a = _auc(y, oof)
        rows.append({"feature": name, "kind": kinds[name], "roc_auc": max(a, 1 - a) if math.isfinite(a) else a})
    return sorted(rows, key=lambda r: (-(r["roc_auc"] if math.isfinite(r["roc_auc"]) else -1), r["feature"]))


def _tree(config, depth: int | None = None, missing: bool = True) -> Pipeline:
    """The tree behind a median imputer fitted inside each fit (``modeling._tree``; a passthrough when the
    matrix has no missing value)."""
    return Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True) if missing else "passthrough"),
        ("tree", DecisionTreeClassifier(max_depth=depth or config.max_depth, min_samples_leaf=config.min_samples_leaf,
                                        class_weight=config.class_weight, random_state=config.random_state)),
    ])


def _logistic(random_state: int) -> Pipeline:
    return Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
        ("model", LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=random_state)),
    ])


def _proba(model, X) -> np.ndarray:
    return model.predict_proba(X)[:, list(model.classes_).index(True)]


def assess(
    *,
    X_fair: np.ndarray,
    X_fair_raw: np.ndarray,
    columns: Sequence[str],
    sources: Sequence[str],
    X_base: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    segment: np.ndarray,
    single_values: dict[str, np.ndarray],
    single_kinds: dict[str, str],
    config,
    total_records: int,
    settings: AssessmentSettings | None = None,
) -> dict[str, object] | None:
    """All assessments of the fair tree against the baseline (see the module docstring), on the sample of
    whole customers given (``validation.customer_sample``); ``X_fair_raw``: the fair columns with missing values left
    missing (for the logistic pipeline's own imputer).
    Long: one grouped-CV loop fills every model's out-of-fold predictions; splitting it would repeat the folds (#9)."""
    settings = settings or AssessmentSettings(random_state=config.random_state)
    X, Xr, Xb, yy, g, seg = X_fair, X_fair_raw, X_base, np.asarray(y, dtype=bool), groups, segment
    _, inverse = np.unique(g, return_inverse=True)
    has = np.bincount(inverse, weights=yy.astype(float)) > 0
    k = min(settings.folds, int(has.sum()), int((~has).sum()))
    if k < 2:
        return None
    splits = grouped_stratified_splits(yy, g, k, settings.random_state)
    missing, missing_base = bool(np.isnan(X).any()), bool(np.isnan(Xb).any())
    oof = {name: np.zeros(len(yy)) for name in ("fair", "baseline", "logistic_l2", "fair_nested", "fair_calibrated")}
    depths: list[int] = []
    perm: dict[str, list[float]] = {}
    src = np.asarray(sources)
    groups_of_sources = correlated_groups(
        np.column_stack([Xr[:, list(src).index(s)] for s in dict.fromkeys(sources)]) if len(src) else Xr,
        list(dict.fromkeys(sources)), settings.corr_group)
    rng = np.random.default_rng(settings.random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f, (train, test) in enumerate(splits):
            _, inv = np.unique(g[train], return_inverse=True)
            has_train = np.bincount(inv, weights=yy[train].astype(float)) > 0
            inner_k = min(settings.inner_folds, int(has_train.sum()), int((~has_train).sum()))
            tree = _tree(config, missing=missing).fit(X[train], yy[train])
            oof["fair"][test] = _proba(tree, X[test])
            oof["baseline"][test] = _proba(_tree(config, missing=missing_base).fit(Xb[train], yy[train]), Xb[test])
            oof["logistic_l2"][test] = _proba(_logistic(config.random_state).fit(Xr[train], yy[train]), Xr[test])
            if inner_k >= 2:
                inner = grouped_stratified_splits(yy[train], g[train], inner_k, settings.random_state + f)
                search = GridSearchCV(_tree(config, missing=missing), {"tree__max_depth": list(settings.depths)}, cv=inner,
                                      scoring="roc_auc", error_score=np.nan).fit(X[train], yy[train])
                depths.append(int(search.best_params_["tree__max_depth"]))
                oof["fair_nested"][test] = _proba(search.best_estimator_, X[test])
                calibrated = CalibratedClassifierCV(_tree(config, missing=missing), method="sigmoid", cv=inner).fit(
                    X[train], yy[train])
                oof["fair_calibrated"][test] = _proba(calibrated, X[test])
            else:  # too few customers of a class for inner folds: the untuned, uncalibrated tree
                depths.append(int(config.max_depth))
                oof["fair_nested"][test] = oof["fair"][test]
                oof["fair_calibrated"][test] = oof["fair"][test]
            # grouped permutation importance of the fair tree on this held-out fold
            base_auc = _auc(yy[test], oof["fair"][test])
            if not math.isfinite(base_auc):
                continue
            for group in groups_of_sources:
                cols = [i for i, s in enumerate(src) if s in group]
                drops = []
                for _ in range(settings.permutation_repeats):
                    Xp = X[test].copy()
                    Xp[:, cols] = Xp[rng.permutation(len(test))][:, cols]
                    drops.append(base_auc - _auc(yy[test], _proba(tree, Xp)))
                perm.setdefault(" + ".join(group), []).append(float(np.mean(drops)))
    models = {name: scores(yy, p) for name, p in oof.items()}
    vs_baseline = {name: paired_bootstrap(yy, p, oof["baseline"], g, settings)
                   for name, p in oof.items() if name != "baseline"}
    importance = sorted(
        ({"features": name, "auc_drop_mean": float(np.mean(v)), "auc_drop_sd": float(np.std(v, ddof=1))
          if len(v) > 1 else math.nan, "folds": len(v)} for name, v in perm.items()),
        key=lambda r: (-r["auc_drop_mean"], r["features"]))
    single = single_feature_auc(single_values, single_kinds, yy, splits)
    flags = [f"{r['feature']} alone has out-of-fold ROC-AUC {r['roc_auc']:.3f} (>= {settings.leak_auc})"
             for r in single if math.isfinite(r["roc_auc"]) and r["roc_auc"] >= settings.leak_auc]

    def reliability(p: np.ndarray) -> dict[str, list[float]]:
        true, pred = calibration_curve(yy, p, n_bins=settings.bins, strategy="quantile")
        return {"mean_predicted": [float(v) for v in pred], "observed_rate": [float(v) for v in true]}

    depth_counts = {str(d): depths.count(d) for d in sorted(set(depths))}
    return {
        "records": int(len(yy)),
        "customers": int(len(np.unique(g))),
        "anomalies": int(yy.sum()),
        "sampled": bool(len(yy) < total_records),
        "folds": k,
        "note": f"{k}-fold stratified CV grouped by customer_id on {len(yy)} records"
        + (f" (a sample of whole customers, drawn separately with and without anomalies, of {total_records} "
           "records)" if len(yy) < total_records else ""),
        "models": models,
        "roc_auc_minus_baseline": vs_baseline,
        "nested_cv": {"parameter": "max_depth", "grid": list(settings.depths), "chosen": depth_counts,
                      "inner_folds": settings.inner_folds, **models["fair_nested"]},
        "within_segment": {name: within_segment_auc(yy, oof[name], seg) for name in ("fair", "logistic_l2")},
        "permutation_importance": importance,
        "correlated_groups": [grp for grp in groups_of_sources if len(grp) > 1],
        "calibration": {
            "method": "CalibratedClassifierCV(sigmoid) on inner grouped folds",
            "raw": {"brier": models["fair"]["brier"], **reliability(oof["fair"])},
            "calibrated": {"brier": models["fair_calibrated"]["brier"], **reliability(oof["fair_calibrated"])},
        },
        "single_feature_auc": single,
        "leakage_flags": flags,
    }
