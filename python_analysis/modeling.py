"""Models fitted for the report: KMeans on anomaly records and decision trees (segment and anomaly).

Every function is pure: DataFrames in, dataclasses out. Fits are bounded by ``ReportConfig`` sample sizes
and seeded by ``ReportConfig.random_state``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.metrics import (
    roc_auc_score,
    silhouette_score,
)
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, export_text
from threadpoolctl import threadpool_limits

from . import worker
from .analysis import anomaly_mask, bounded_indices, numeric_column, text_column
from .assessment import AssessmentSettings, assess
from .config import (
    BEHAVIOUR_CATEGORICAL,
    BEHAVIOUR_NUMERIC,
    CLUSTER_FEATURES,
    RETENTION_DERIVED_CATEGORICAL,
    RETENTION_DERIVED_NUMERIC,
    SEASONALITY_FEATURES,
    STABILITY_FEATURES,
    ReportConfig,
)
from .errors import SegfitError
from .validation import (
    RepeatedCV,
    customer_sample,
    grouped_stratified_splits,
    paired_difference,
    repeated_grouped_cv,
)

MISSING = "(missing)"
OTHER = "(other)"


# ============================================================================================ features
@dataclass(frozen=True)
class FeatureMatrix:
    """Model-ready matrix: numeric columns median-imputed, categoricals one-hot (``source=value``)."""

    X: np.ndarray
    columns: list[str]
    sources: list[str]
    kinds: list[str]  # 'numeric' | 'categorical' per model column
    notes: list[str]
    dropped: list[str]
    note_sources: list[str] = field(default_factory=list)  # source column of each note

    @property
    def source_kinds(self) -> dict[str, str]:
        return dict(zip(self.sources, self.kinds, strict=True))

    def select(self, sources: Sequence[str]) -> FeatureMatrix:
        """The sub-matrix of the given source columns (notes and drops filtered to them)."""
        wanted = set(sources)
        cols = [i for i, src in enumerate(self.sources) if src in wanted]
        keep_notes = [i for i, src in enumerate(self.note_sources) if src in wanted]
        return FeatureMatrix(
            X=self.X[:, cols],
            columns=[self.columns[i] for i in cols],
            sources=[self.sources[i] for i in cols],
            kinds=[self.kinds[i] for i in cols],
            notes=[self.notes[i] for i in keep_notes],
            dropped=[d for d in self.dropped if d in wanted],
            note_sources=[self.note_sources[i] for i in keep_notes],
        )

    @property
    def n_sources(self) -> int:
        return len(set(self.sources))


def _require_modelable(frame: pd.DataFrame, column: str, values: np.ndarray, dtype: type) -> None:
    """A feature value that is infinite, or too large for the model's float type, stops the report with a
    clear message (scikit-learn would fail with a traceback). Missing values (NaN) are imputed later."""
    limit = np.finfo(dtype).max
    with np.errstate(invalid="ignore"):
        bad = np.isinf(values) | (np.abs(values) > limit)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        key = frame["customer_record_id"].iloc[first] if "customer_record_id" in frame.columns else first
        raise SegfitError(
            f"feature {column!r} has {int(bad.sum())} value(s) that are infinite or too large to model "
            f"(first: {values[first]:.6g} at customer_record_id {key}); quarantine such inputs with var "
            "max_abs_value or fix the data"
        )


def _missing(column: str, values: np.ndarray, finite: np.ndarray, present: np.ndarray, impute: bool
             ) -> tuple[np.ndarray, str]:
    """(values, note) for a numeric column with missing values: median-imputed here, or left NaN for the
    pipelines' imputers (``impute=False``)."""
    missing = int(len(values) - finite.sum())
    if not impute:
        return values, (f"{column}: {missing} missing value(s), imputed inside each fit with the median of its "
                        "training records")
    median = float(np.median(present))
    return np.where(finite, values, median), f"{column}: {missing} missing value(s) imputed with the median {median:.6g}"


def feature_matrix(
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    config: ReportConfig,
    dtype: type = np.float32,
    impute: bool = True,
) -> FeatureMatrix:
    """Build a matrix; absent/all-null/constant columns are dropped and every imputation is noted. With
    ``impute=False`` missing numeric values stay NaN: the trees' pipelines impute them inside each fit.

    Long: numeric and categorical encoding of one matrix with its notes (#9).
    """
    blocks: list[np.ndarray] = []
    columns: list[str] = []
    sources: list[str] = []
    kinds: list[str] = []
    notes: list[str] = []
    note_sources: list[str] = []
    dropped: list[str] = []
    n = len(frame)
    for column in numeric:
        if column not in frame.columns:
            dropped.append(column)
            notes.append(f"{column}: not in the mart, dropped")
            note_sources.append(column)
            continue
        values = numeric_column(frame, column)
        _require_modelable(frame, column, values, dtype)
        finite = np.isfinite(values)
        if not finite.any():
            dropped.append(column)
            notes.append(f"{column}: all values missing, dropped")
            note_sources.append(column)
            continue
        present = values[finite]
        if np.all(present == present[0]):
            dropped.append(column)
            notes.append(f"{column}: constant ({present[0]:.6g}), dropped")
            note_sources.append(column)
            continue
        if not finite.all():
            values, note = _missing(column, values, finite, present, impute)
            notes.append(note)
            note_sources.append(column)
        blocks.append(values.astype(dtype).reshape(-1, 1))
        columns.append(column)
        sources.append(column)
        kinds.append("numeric")
    for column in categorical:
        if column not in frame.columns:
            dropped.append(column)
            notes.append(f"{column}: not in the mart, dropped")
            note_sources.append(column)
            continue
        values = text_column(frame, column, missing=MISSING)
        counts = values.value_counts()
        order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        keep = [level for level, _ in order[: config.max_categories]]
        if len(order) > config.max_categories:
            values = values.where(values.isin(keep), OTHER)
            keep = keep + [OTHER]
            notes.append(f"{column}: {len(order) - config.max_categories} rare level(s) grouped as '{OTHER}'")
            note_sources.append(column)
        if len(keep) < 2:
            dropped.append(column)
            notes.append(f"{column}: constant ('{keep[0] if keep else ''}'), dropped")
            note_sources.append(column)
            continue
        if (values == MISSING).any():
            notes.append(f"{column}: {int((values == MISSING).sum())} missing value(s) coded as '{MISSING}'")
            note_sources.append(column)
        codes = pd.Categorical(values, categories=sorted(keep)).codes
        for code, level in enumerate(sorted(keep)):
            blocks.append((codes == code).astype(dtype).reshape(-1, 1))
            columns.append(f"{column}={level}")
            sources.append(column)
            kinds.append("categorical")
    X = np.hstack(blocks) if blocks else np.empty((n, 0), dtype=dtype)
    return FeatureMatrix(
        X=X,
        columns=columns,
        sources=sources,
        kinds=kinds,
        notes=notes,
        dropped=dropped,
        note_sources=note_sources,
    )


def stratified_bounded_indices(y: np.ndarray, size: int, random_state: int) -> np.ndarray:
    """Sorted positions of at most ``size`` rows, proportional per class, every class kept (>= 1 row)."""
    n = len(y)
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    classes, inverse = np.unique(y, return_inverse=True)
    picked = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        take = max(1, int(round(size * len(members) / n)))
        take = min(take, len(members))
        picked.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(picked))


def aggregate_importances(fm: FeatureMatrix, importances: np.ndarray) -> pd.DataFrame:
    """Importances summed back to the source column; one-hot columns aggregate to their categorical."""
    frame = pd.DataFrame({"feature": fm.sources, "kind": fm.kinds, "importance": importances})
    out = frame.groupby(["feature", "kind"], sort=True, as_index=False)["importance"].sum()
    out = out.sort_values(["importance", "feature"], ascending=[False, True], kind="mergesort")
    return out.reset_index(drop=True)


def top_importances(importances: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` largest non-zero importances (zero-importance features carry no information)."""
    if importances.empty:
        return importances
    return importances[importances["importance"] > 1e-12].head(n).reset_index(drop=True)


def _condition(column: str, kind: str, threshold: float, left: bool) -> str:
    if kind == "categorical" and "=" in column:
        source, level = column.split("=", 1)
        return f"{source} {'!=' if left else '=='} {level}"
    return f"{column} {'<=' if left else '>'} {threshold:.4g}"


def leaf_rules(
    estimator: DecisionTreeClassifier, fm: FeatureMatrix, X_fit: np.ndarray, y_fit: np.ndarray
) -> pd.DataFrame:
    """One row per leaf: the path as text, predicted class, rows and per-class counts (from the fit rows)."""
    tree = estimator.tree_
    kinds = fm.kinds
    paths: dict[int, list[str]] = {}
    stack: list[tuple[int, list[str]]] = [(0, [])]
    while stack:
        node, conds = stack.pop()
        left, right = tree.children_left[node], tree.children_right[node]
        if left == right:
            paths[node] = conds
            continue
        f = tree.feature[node]
        thr = float(tree.threshold[node])
        stack.append((right, conds + [_condition(fm.columns[f], kinds[f], thr, left=False)]))
        stack.append((left, conds + [_condition(fm.columns[f], kinds[f], thr, left=True)]))
    leaves = estimator.apply(X_fit)
    classes = list(estimator.classes_)
    rows = []
    for leaf, conds in paths.items():
        in_leaf = leaves == leaf
        counts = {c: int(np.sum(y_fit[in_leaf] == c)) for c in classes}
        predicted = classes[int(np.argmax(tree.value[leaf][0]))]
        rows.append(
            {
                "leaf": int(leaf),
                "rule": " AND ".join(conds) if conds else "(all records)",
                "predicted": predicted,
                "n": int(in_leaf.sum()),
                "counts": counts,
            }
        )
    return pd.DataFrame(rows, columns=["leaf", "rule", "predicted", "n", "counts"])


def out_of_fold_proba(
    estimator: DecisionTreeClassifier, X: np.ndarray, y: np.ndarray, config: ReportConfig
) -> tuple[np.ndarray | None, int, str]:
    """Stratified k-fold out-of-fold class probabilities for every row (columns = sorted classes).

    folds = min(cv_folds, smallest class count); each fold's model is trained on at most
    ``cv_fit_sample_size`` rows of the other folds. Returns (None, folds, note) when CV is impossible.
    """
    classes, counts = np.unique(y, return_counts=True)
    folds = int(min(config.cv_folds, counts.min())) if len(counts) else 0
    if len(classes) < 2 or folds < 2:
        return (
            None,
            folds,
            (
                f"cross-validation skipped: the smallest class has {int(counts.min()) if len(counts) else 0} "
                "record(s), at least 2 are needed"
            ),
        )
    proba = np.zeros((len(y), len(classes)), dtype=float)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.random_state)
    for i, (train, test) in enumerate(skf.split(np.zeros(len(y)), y)):
        sub = train[stratified_bounded_indices(y[train], config.cv_rows, config.random_state + i)]
        model = clone(estimator).fit(X[sub], y[sub])
        fold_proba = model.predict_proba(X[test])
        positions = np.searchsorted(classes, model.classes_)
        proba[np.ix_(test, positions)] = fold_proba
    note = (
        f"stratified {folds}-fold CV; out-of-fold predictions for all {len(y)} records; each fold model trained "
        f"on at most {config.cv_rows} records"
    )
    return proba, folds, note


def _tree(config: ReportConfig, class_weight: str | None, missing: bool = True) -> Pipeline:
    """The decision tree behind a median imputer, so every fit (each CV fold too) imputes from its own
    training records only. ``missing=False`` (the matrix has no missing value) makes the imputer a
    passthrough: the same tree, without the imputer's cost in every fit."""
    return Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True) if missing else "passthrough"),
        ("tree", DecisionTreeClassifier(max_depth=config.max_depth, min_samples_leaf=config.min_samples_leaf,
                                        class_weight=class_weight, random_state=config.random_state)),
    ])


# ============================================================================================ segment tree
@dataclass
class SegmentTreeResult:
    skipped: bool
    note: str
    n_records: int = 0
    n_fit: int = 0
    classes: list[str] = field(default_factory=list)
    feature_notes: list[str] = field(default_factory=list)
    importances: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_class: pd.DataFrame = field(default_factory=pd.DataFrame)
    accuracy_in_sample: float = math.nan
    accuracy_cv: float = math.nan
    cv_folds: int = 0
    cv_note: str = ""
    rules_text: str = ""
    top_rules: pd.DataFrame = field(default_factory=pd.DataFrame)
    threshold_feature: str | None = None
    threshold_statement: str | None = None
    estimator: DecisionTreeClassifier | None = None
    feature_names: list[str] = field(default_factory=list)


def model_matrix(fit: pd.DataFrame, config: ReportConfig) -> FeatureMatrix:
    """One matrix holding every feature any tree uses (each model selects its columns from it)."""
    numeric, categorical = model_feature_sets(config)["full"]
    return feature_matrix(fit, numeric, categorical, config, impute=False)


def segment_tree(
    fit: pd.DataFrame, config: ReportConfig, matrix: FeatureMatrix | None = None
) -> SegmentTreeResult:
    """What defines the segment: a tree predicting profitability_segment from behaviour features.

    ``matrix`` (from ``model_matrix``) avoids rebuilding the features when several models are fitted.
    Long: fit, CV, per-class metrics and rules of one tree (#9).
    """
    n = len(fit)
    if "profitability_segment" not in fit.columns or n == 0:
        return SegmentTreeResult(
            skipped=True, note="no records or no profitability_segment column", n_records=n
        )
    codes, uniques = pd.factorize(text_column(fit, "profitability_segment"), sort=True)
    classes = [str(u) for u in uniques]
    y_all = codes.astype(np.int64)
    if len(classes) < 2:
        return SegmentTreeResult(
            skipped=True,
            n_records=n,
            classes=classes,
            note=f"segment tree skipped: only one segment ({classes[0] if classes else 'none'}) present",
        )
    excluded = set(config.extra_excluded_features)
    numeric = [c for c in BEHAVIOUR_NUMERIC if c not in excluded]
    categorical = [c for c in BEHAVIOUR_CATEGORICAL if c not in excluded]
    if matrix is None:
        fm = feature_matrix(fit, numeric, categorical, config, impute=False)
    else:
        fm = matrix.select(numeric + categorical)
    if fm.X.shape[1] == 0:
        return SegmentTreeResult(
            skipped=True,
            n_records=n,
            classes=classes,
            feature_notes=fm.notes,
            note="segment tree skipped: no usable behaviour feature (all missing/constant)",
        )
    idx = stratified_bounded_indices(y_all, config.tree_rows, config.random_state)
    X_fit, y_fit = fm.X[idx], y_all[idx]
    missing = bool(np.isnan(fm.X).any())
    pipe = _tree(config, None, missing).fit(X_fit, y_fit)
    model = pipe[-1]
    pred_in = pipe.predict(X_fit)
    p_in, r_in = per_class_precision_recall(y_fit, pred_in.astype(np.int64), len(classes))
    proba, folds, cv_note = out_of_fold_proba(_tree(config, None, missing), fm.X, y_all, config)
    support_all = np.bincount(y_all, minlength=len(classes))
    per_class = pd.DataFrame(
        {"segment": classes, "support": support_all, "precision_in_sample": p_in, "recall_in_sample": r_in}
    )
    acc_cv = math.nan
    if proba is not None:
        pred_cv = np.argmax(proba, axis=1)
        p_cv, r_cv = per_class_precision_recall(y_all, pred_cv, len(classes))
        per_class["precision_cv"] = p_cv
        per_class["recall_cv"] = r_cv
        acc_cv = float(np.mean(y_all == pred_cv))
    else:
        per_class["precision_cv"] = np.nan
        per_class["recall_cv"] = np.nan
    importances = aggregate_importances(fm, model.feature_importances_)
    threshold_feature = None
    statement = None
    if len(importances) and importances["importance"].iloc[0] >= config.threshold_importance:
        threshold_feature = str(importances["feature"].iloc[0])
        share = float(importances["importance"].iloc[0])
        root = model.tree_.feature[0]
        cv_text = f" (cross-validated accuracy {acc_cv:.1%})" if math.isfinite(acc_cv) else ""
        root_text = ""
        if root >= 0 and fm.sources[root] == threshold_feature:
            root_text = (
                " The first split is "
                + _condition(fm.columns[root], fm.kinds[root], float(model.tree_.threshold[0]), left=True)
                + "."
            )
        statement = (
            f"The segment is close to a threshold on {threshold_feature}: that one feature carries "
            f"{share:.0%} of the tree's importance{cv_text}.{root_text} Other behaviour (stability, "
            "seasonality) plays little role in how records are assigned to segments."
        )
    rules = leaf_rules(model, fm, pipe[:-1].transform(X_fit), y_fit)
    rules["purity"] = [
        (row.counts[row.predicted] / row.n) if row.n else math.nan for row in rules.itertuples(index=False)
    ]
    rules["predicted"] = [classes[int(c)] for c in rules["predicted"]]
    rules = rules.sort_values(["n", "leaf"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
    return SegmentTreeResult(
        skipped=False,
        note="",
        n_records=n,
        n_fit=int(len(idx)),
        classes=classes,
        feature_notes=fm.notes,
        importances=importances,
        per_class=per_class,
        accuracy_in_sample=float(np.mean(y_fit == pred_in)),
        accuracy_cv=acc_cv,
        cv_folds=folds if proba is not None else 0,
        cv_note=cv_note,
        rules_text=export_text(model, feature_names=fm.columns, class_names=classes, decimals=4),
        top_rules=rules[["rule", "predicted", "n", "purity"]],
        threshold_feature=threshold_feature,
        threshold_statement=statement,
        estimator=model,
        feature_names=fm.columns,
    )


# ============================================================================================ anomaly trees
MODEL_NAMES: tuple[str, ...] = ("full", "fair", "baseline", "behavioural")

MODEL_DESCRIPTIONS: dict[str, str] = {
    "full": "LEAKAGE: all features including retention_probability and the retention-derived deviation "
    "columns that define the label; shown only to demonstrate leakage",
    "fair": "behaviour features plus segment, lifecycle stage and seasonal preference; nothing derived from "
    "retention",
    "baseline": "profitability_segment (one-hot) only",
    "behavioural": "numeric behaviour features only, without the segment-defining (band) feature",
}


def model_feature_sets(config: ReportConfig) -> dict[str, tuple[list[str], list[str]]]:
    """(numeric, categorical) source columns per anomaly model."""
    excluded = set(config.extra_excluded_features)

    def keep(cols: Sequence[str]) -> list[str]:
        return [c for c in cols if c not in excluded]

    behaviour = keep(BEHAVIOUR_NUMERIC)
    categorical = keep(("profitability_segment", *BEHAVIOUR_CATEGORICAL))
    return {
        "full": (
            behaviour + list(RETENTION_DERIVED_NUMERIC),
            categorical + list(RETENTION_DERIVED_CATEGORICAL),
        ),
        "fair": (behaviour, categorical),
        "baseline": ([], ["profitability_segment"]),
        "behavioural": ([c for c in behaviour if c != config.segment_defining_feature], []),
    }


def leakage_flags(
    importances: pd.DataFrame, cv_auc: float | None, n_sources: int, config: ReportConfig
) -> list[str]:
    """A CV ROC-AUC >= leak_auc. (Columns derived from the label's inputs are excluded from the fair models by
    name, RETENTION_DERIVED_*; single features with near-perfect out-of-fold ROC-AUC are flagged by the
    grouped assessment. The old "one feature >= 90 % of the importance" heuristic is gone: a dominant
    feature is not evidence of leakage.)"""
    flags = []
    if cv_auc is not None and math.isfinite(cv_auc) and cv_auc >= config.leak_auc:
        flags.append(f"cross-validated ROC-AUC {cv_auc:.3f} >= {config.leak_auc}")
    return flags


def _binary_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype=bool)
    pred = proba >= 0.5
    positives = int(y.sum())
    auc = roc_auc_score(y, proba) if 0 < positives < len(y) else math.nan
    return {
        "n": int(len(y)),
        "accuracy": float(np.mean(pred == y)) if len(y) else math.nan,
        "roc_auc": float(auc),
        "recall_anomaly": float((pred & y).sum() / positives) if positives else math.nan,
    }


def per_class_precision_recall(
    y: np.ndarray, pred: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall per integer class code (0 when a class is never predicted / absent)."""
    confusion = np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )
    tp = np.diag(confusion).astype(float)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(n_classes), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(n_classes), where=actual > 0)
    return precision, recall


@dataclass
class AnomalyModel:
    name: str
    description: str
    skipped: bool
    note: str = ""
    leakage_by_design: bool = False
    features: list[str] = field(default_factory=list)
    feature_notes: list[str] = field(default_factory=list)
    n_fit: int = 0
    in_sample: dict[str, float] = field(default_factory=dict)
    cv: dict[str, float] | None = None
    cv_folds: int = 0
    cv_note: str = ""
    importances: pd.DataFrame = field(default_factory=pd.DataFrame)
    leakage: list[str] = field(default_factory=list)
    rules_text: str = ""
    top_rules: pd.DataFrame = field(default_factory=pd.DataFrame)
    estimator: DecisionTreeClassifier | None = None
    feature_names: list[str] = field(default_factory=list)
    oof_proba: np.ndarray | None = None
    full_proba: np.ndarray | None = None
    cv_repeated: RepeatedCV | None = None
    vs_baseline: dict[str, float] | None = None  # paired split-by-split ROC-AUC difference
    assessment: dict | None = None  # assessment.assess (fair model only)


@dataclass
class AnomalyModelsResult:
    skipped: bool
    note: str
    n_records: int
    n_anomalies: int
    models: dict[str, AnomalyModel]
    scores: pd.DataFrame
    scores_source: str
    # each scored record's anomaly flag, in the order of ``scores`` (not written back: for the reliability curve)
    score_flags: np.ndarray | None = None


SCORE_COLUMNS = ["customer_record_id", "anomaly_probability", "predicted_anomaly"]


def empty_scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_record_id": pd.Series(dtype=object),
            "anomaly_probability": pd.Series(dtype="float64"),
            "predicted_anomaly": pd.Series(dtype=bool),
        }
    )


def _anomaly_model(
    name: str, fm: FeatureMatrix, y: np.ndarray, config: ReportConfig, groups: np.ndarray | None = None
) -> AnomalyModel:
    model = AnomalyModel(
        name=name,
        description=MODEL_DESCRIPTIONS[name],
        skipped=False,
        leakage_by_design=(name == "full"),
        features=sorted(set(fm.sources)),
        feature_notes=fm.notes,
        feature_names=fm.columns,
    )
    if fm.X.shape[1] == 0:
        model.skipped = True
        model.note = "skipped: no usable feature (all missing/constant)"
        return model
    idx = stratified_bounded_indices(y, config.tree_rows, config.random_state)
    X_fit, y_fit = fm.X[idx], y[idx]
    missing = bool(np.isnan(fm.X).any())
    pipe = _tree(config, config.class_weight, missing).fit(X_fit, y_fit)
    est = pipe[-1]
    pos = list(pipe.classes_).index(True)
    model.estimator = est
    model.n_fit = int(len(idx))
    model.in_sample = _binary_metrics(y_fit, pipe.predict_proba(X_fit)[:, pos])
    model.full_proba = pipe.predict_proba(fm.X)[:, pos]
    if groups is None:
        groups = np.arange(len(y))
    model.cv_repeated = repeated_grouped_cv(
        _tree(config, config.class_weight, missing), fm.X, y, groups, folds=config.cv_folds, repeats=config.cv_repeats,
        random_state=config.random_state, max_rows=config.repeated_cv_sample_size,
    )
    if model.cv_repeated is None:
        model.cv_note = ("cross-validation skipped: fewer than 2 customers with (or without) an anomaly record")
    else:  # the cross-validated figures are the repeated grouped CV's means (the old single record split is gone)
        summary = model.cv_repeated.summary()
        model.cv = {"n": model.cv_repeated.n_records, **{k: v["mean"] for k, v in summary.items()}}
        model.cv_folds = model.cv_repeated.folds
        model.cv_note = model.cv_repeated.note
    model.importances = aggregate_importances(fm, est.feature_importances_)
    model.leakage = leakage_flags(
        model.importances, model.cv["roc_auc"] if model.cv else None, fm.n_sources, config
    )
    model.rules_text = export_text(est, feature_names=fm.columns, decimals=4)
    rules = leaf_rules(est, fm, pipe[:-1].transform(X_fit), y_fit)
    total_anomalies = max(int(y_fit.sum()), 1)
    rules["anomalies"] = [int(c.get(True, 0)) for c in rules["counts"]]
    rules["anomaly_share"] = rules["anomalies"] / rules["n"].where(rules["n"] > 0)
    rules["anomaly_coverage"] = rules["anomalies"] / total_anomalies
    rules = rules[rules["predicted"] == True]  # noqa: E712 - numpy bools
    rules = rules.sort_values(["anomalies", "leaf"], ascending=[False, True], kind="mergesort")
    model.top_rules = rules[["rule", "n", "anomalies", "anomaly_share", "anomaly_coverage"]].reset_index(
        drop=True
    )
    return model


def anomaly_models(
    fit: pd.DataFrame, config: ReportConfig, matrix: FeatureMatrix | None = None,
    population: pd.DataFrame | None = None, sample_positions: np.ndarray | None = None,
    runner: worker.Runner | None = None,
) -> AnomalyModelsResult:
    """What predicts an anomaly: full (leaky), fair, baseline and behavioural trees, in-sample and CV.

    ``matrix`` (from ``model_matrix``) avoids rebuilding the features for each model. When ``fit`` is the
    analysis sample (``sampling.analysis_sample``) of ``population`` at ``sample_positions``, the written-back
    scores still cover every record of ``population``: the sampled records get their calibrated out-of-fold
    probability, the others that of the same calibrated model fitted on the sample (they were not in its fit).
    Long: the four models share one matrix and one CV split (#9).
    """
    return start_anomaly_models(fit, config, matrix, population, sample_positions, runner)()


def start_anomaly_models(
    fit: pd.DataFrame, config: ReportConfig, matrix: FeatureMatrix | None = None,
    population: pd.DataFrame | None = None, sample_positions: np.ndarray | None = None,
    runner: worker.Runner | None = None,
) -> Callable[[], AnomalyModelsResult]:
    """``anomaly_models`` in two steps: this call fits what runs in this process and submits the grouped
    assessment and the calibrated out-of-fold folds to ``runner`` (the report's helper process on large data);
    the function it returns collects them and gives the result. Between the two the caller may do other work
    (the report draws its data charts): the figures are the same, each part is seeded by its own arguments."""
    n = len(fit)
    y = anomaly_mask(fit)
    n_anom = int(y.sum())
    if n == 0 or n_anom in (0, n):
        only = "no records" if n == 0 else ("no anomalies" if n_anom == 0 else "only anomalies")
        return lambda: AnomalyModelsResult(
            skipped=True,
            note=f"anomaly trees skipped: a single class ({only}); nothing to separate",
            n_records=n,
            n_anomalies=n_anom,
            models={},
            scores=empty_scores(),
            scores_source="none",
        )
    models: dict[str, AnomalyModel] = {}
    if matrix is None:
        matrix = model_matrix(fit, config)
    id_column = "customer_id" if "customer_id" in fit.columns else "customer_record_id"
    groups = pd.factorize(text_column(fit, id_column, missing=""), sort=True)[0]
    # the grouped assessment needs only the matrix: on large data it runs in the helper process meanwhile
    runner = runner or worker.SerialRunner()
    inputs = _assessment_inputs(fit, matrix, y, groups, config)
    assessment = None if inputs is None else runner.submit("the grouped assessment", run_assessment, inputs)
    del inputs
    for name, (numeric, categorical) in model_feature_sets(config).items():
        fm = matrix.select([*numeric, *categorical])
        models[name] = _anomaly_model(name, fm, y, config, groups)
        del fm
    base = models.get("baseline")
    for m in models.values():
        if m.cv_repeated is not None and base is not None and base.cv_repeated is not None:
            m.vs_baseline = paired_difference(m.cv_repeated, base.cv_repeated)
    fair = models["fair"]
    ids = text_column(fit, "customer_record_id", missing="").to_numpy(dtype=object)
    flags = y
    folds = population_proba = population_ids = None
    fair_sources = [*model_feature_sets(config)["fair"][0], *model_feature_sets(config)["fair"][1]]
    if not fair.skipped and fair.cv_repeated is not None:
        fm = matrix.select(fair_sources)
        # the calibrated out-of-fold folds need only the sample's matrix: on large data the helper fits them
        # while this process scores the population with the model fitted on the whole sample
        folds = runner.submit("the calibrated folds", calibrated_oof_proba, fm.X, y, groups, config)
        if population is not None and sample_positions is not None and _calibration_possible(y, groups, config):
            population_proba, population_ids = _score_population(fm, fit, y, groups, population, config)
        del fm

    def finish() -> AnomalyModelsResult:
        return _finish_anomaly_models(fit, config, models, y, n_anom, ids, flags, runner, assessment, folds,
                                      population, sample_positions, population_proba, population_ids)

    return finish


def _finish_anomaly_models(
    fit: pd.DataFrame, config: ReportConfig, models: dict[str, AnomalyModel], y: np.ndarray, n_anom: int,
    ids: np.ndarray, flags: np.ndarray, runner: worker.Runner, assessment: worker.Handle | None,
    folds: worker.Handle | None, population: pd.DataFrame | None, sample_positions: np.ndarray | None,
    population_proba: np.ndarray | None, population_ids: pd.api.extensions.ExtensionArray | None,
) -> AnomalyModelsResult:
    """The second step of ``start_anomaly_models``: the calibrated scores and the assessment collected."""
    n = len(fit)
    fair = models["fair"]
    calibrated = None if folds is None else runner.result(folds)
    if calibrated is not None and population_proba is not None and sample_positions is not None:
        population_proba[sample_positions] = calibrated  # the sampled records keep their out-of-fold probability
        calibrated, ids = population_proba, population_ids
        flags = anomaly_mask(_records(population))
    if fair.skipped:
        scores, source = empty_scores(), "none (fair model skipped)"
    else:
        proba = calibrated if calibrated is not None else fair.full_proba
        source = (
            "fair model, out-of-fold (customer-grouped folds), calibrated (CalibratedClassifierCV, sigmoid, inner "
            "grouped folds)" + (
                f"; fitted on the analysis sample of {len(fit):,} records, the other "
                f"{len(ids) - len(fit):,} records (in no fit) scored by one calibrated fair tree fitted on the sample"
                if len(ids) != len(fit) else "")
            if calibrated is not None
            else "fair model, in-sample (cross-validation impossible)"
        )
        scores = pd.DataFrame(
            {
                "customer_record_id": ids,
                "anomaly_probability": proba.astype("float64"),
                "predicted_anomaly": proba >= 0.5,
                "_flag": flags,
            }
        )
        scores = scores.sort_values("customer_record_id", kind="mergesort").reset_index(drop=True)
        flags = scores.pop("_flag").to_numpy(dtype=bool)
    if assessment is not None:
        _apply_assessment(models, runner.result(assessment), config.leak_auc)
    return AnomalyModelsResult(
        skipped=False,
        note="",
        n_records=n,
        n_anomalies=n_anom,
        models=models,
        scores=scores,
        scores_source=source,
        score_flags=None if fair.skipped else flags,
    )


def calibrated_oof_proba(X: np.ndarray, y: np.ndarray, groups: np.ndarray, config: ReportConfig) -> np.ndarray | None:
    """Calibrated out-of-fold P(anomaly) for every record: customer-grouped stratified folds; in each, a
    ``CalibratedClassifierCV`` of the fair tree (sigmoid, on inner grouped folds) trained on at most
    ``cv_fit_sample_size`` records of the other folds. None when a class has too few customers."""
    fitted = _calibrated_folds(X, y, groups, config)
    return None if fitted is None else fitted[0]


def _calibrated_folds(X: np.ndarray, y: np.ndarray, groups: np.ndarray, config: ReportConfig
                      ) -> tuple[np.ndarray, list] | None:
    """(calibrated out-of-fold P(anomaly), the fold models): see ``calibrated_oof_proba``."""
    _, inverse = np.unique(groups, return_inverse=True)
    has = np.bincount(inverse, weights=y.astype(float)) > 0
    k = min(config.cv_folds, int(has.sum()), int((~has).sum()))
    if k < 2:
        return None
    out = np.zeros(len(y))
    models = []
    for i, (train, test) in enumerate(grouped_stratified_splits(y, groups, k, config.random_state)):
        model = _calibrated_tree(X[train], y[train], groups[train], config, config.random_state + i)
        out[test] = model.predict_proba(X[test])[:, list(model.classes_).index(True)]
        models.append(model)
    return out, models


def _calibrated_tree(X: np.ndarray, y: np.ndarray, groups: np.ndarray, config: ReportConfig, seed: int, *,
                     missing: bool | None = None, ensemble: bool = True):
    """The fair tree in a ``CalibratedClassifierCV`` (sigmoid, inner customer-grouped folds), fitted on at most
    ``cv_fit_sample_size`` of the given records; the plain tree when too few customers for inner folds.
    ``missing`` (default: whether ``X`` has a NaN) keeps the imputer; ``ensemble=False`` fits one tree on all of
    ``X`` with the sigmoid from inner out-of-fold predictions."""
    sub = stratified_bounded_indices(y, config.cv_rows, seed)
    missing = bool(np.isnan(X).any()) if missing is None else missing
    _, inv = np.unique(groups[sub], return_inverse=True)
    has_sub = np.bincount(inv, weights=y[sub].astype(float)) > 0
    inner_k = min(3, int(has_sub.sum()), int((~has_sub).sum()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if inner_k >= 2:
            inner = grouped_stratified_splits(y[sub], groups[sub], inner_k, seed)
            model = CalibratedClassifierCV(_tree(config, config.class_weight, missing), method="sigmoid", cv=inner,
                                           ensemble=ensemble)
        else:
            model = _tree(config, config.class_weight, missing)
        model.fit(X[sub], y[sub])
    return model


def encode_like(frame: pd.DataFrame, fm: FeatureMatrix, reference: pd.DataFrame, dtype: type = np.float32
                ) -> np.ndarray:
    """``frame`` encoded into the columns of ``fm`` (a matrix built from ``reference`` with ``impute=False``):
    missing numeric values stay NaN (the tree pipelines impute them); a level ``fm`` has no column for is
    '(other)' when ``fm`` grouped rare levels, else all zeros."""
    out = np.empty((len(frame), len(fm.columns)), dtype=dtype)
    levels: dict[str, set[str]] = {}
    for column, source, kind in zip(fm.columns, fm.sources, fm.kinds, strict=True):
        if kind == "categorical":
            levels.setdefault(source, set()).add(column[len(source) + 1:])
    text_cache: dict[str, pd.Series] = {}
    for j, (column, source, kind) in enumerate(zip(fm.columns, fm.sources, fm.kinds, strict=True)):
        if kind == "numeric":
            values = numeric_column(frame, source)
            _require_modelable(frame, source, values, dtype)
            out[:, j] = values
            continue
        if source not in text_cache:
            values = text_column(frame, source, missing=MISSING)
            if OTHER in levels[source]:
                values = values.where(values.isin(levels[source]), OTHER)
            text_cache[source] = values
        out[:, j] = (text_cache[source] == column[len(source) + 1:]).to_numpy()
    return out


def _calibration_possible(y: np.ndarray, groups: np.ndarray, config: ReportConfig) -> bool:
    """Do the calibrated folds run (``_calibrated_folds`` returns None otherwise): at least 2 customers with and
    2 without an anomaly record."""
    _, inverse = np.unique(groups, return_inverse=True)
    has = np.bincount(inverse, weights=y.astype(float)) > 0
    return min(config.cv_folds, int(has.sum()), int((~has).sum())) >= 2


def _score_population(fm: FeatureMatrix, fit: pd.DataFrame, y: np.ndarray, groups: np.ndarray,
                      population: pd.DataFrame, config: ReportConfig, chunk: int = 200_000
                      ) -> tuple[np.ndarray, pd.api.extensions.ExtensionArray]:
    """(P(anomaly), customer_record_id) for every record of ``population``, scored by one calibrated fair tree
    fitted on the sample (``CalibratedClassifierCV(ensemble=False)``: the sigmoid fitted on inner grouped
    out-of-fold predictions, one tree on the sample), encoded in slices of ``chunk`` records that read only
    the model's columns. The caller then puts the sample's calibrated out-of-fold probabilities at the sample's
    positions: every other record was in no fit."""
    # the imputer stays even when the sample has no NaN: the records scored here may have some
    model = _calibrated_tree(fm.X, y, groups, config, config.random_state, missing=True, ensemble=False)
    pos = list(model.classes_).index(True)
    columns = [c for c in dict.fromkeys(["customer_record_id", *fm.sources]) if c in population.columns]
    proba = np.empty(len(population))
    if isinstance(population, pd.DataFrame):
        for start in range(0, len(population), chunk):
            X = encode_like(population.iloc[start:start + chunk][columns], fm, fit)  # slice, then columns: no copy
            proba[start:start + chunk] = model.predict_proba(X)[:, pos]
    else:  # a Population read in bounded memory: its chunks, each put at its records' positions
        for positions, frame in population.chunks(columns, chunk):
            proba[positions] = model.predict_proba(encode_like(frame, fm, fit))[:, pos]
    # the ids stay in the frame's (Arrow) string array: no Python string per record
    return proba, text_column(_records(population), "customer_record_id", missing="").astype("str").array


def _assessment_inputs(fit: pd.DataFrame, matrix: FeatureMatrix, y: np.ndarray, groups: np.ndarray,
                       config: ReportConfig) -> dict[str, object] | None:
    """The arguments of the grouped assessment (``assessment.assess``) of the fair tree, on a stated sample
    of whole customers; None when the fair or the baseline model has no usable feature (it is skipped)."""
    sets = model_feature_sets(config)
    fm = matrix.select([*sets["fair"][0], *sets["fair"][1]])
    bm = matrix.select([*sets["baseline"][0], *sets["baseline"][1]])
    if fm.X.shape[1] == 0 or bm.X.shape[1] == 0:  # the condition on which _anomaly_model skips a model
        return None
    settings = AssessmentSettings(random_state=config.random_state, max_rows=config.repeated_cv_sample_size,
                                  leak_auc=config.leak_auc)
    idx = customer_sample(y, groups, settings.max_rows, settings.random_state)
    raw = np.column_stack([
        numeric_column(fit, src)[idx] if kind == "numeric" else fm.X[idx, i]
        for i, (src, kind) in enumerate(zip(fm.sources, fm.kinds, strict=True))
    ]) if fm.X.shape[1] else fm.X[idx]
    full_numeric, full_categorical = sets["full"]
    single_values: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for name in full_numeric:
        if name in fit.columns and name not in config.extra_excluded_features:
            single_values[name], kinds[name] = numeric_column(fit, name)[idx], "numeric"
    for name in full_categorical:
        if name in fit.columns and name not in config.extra_excluded_features:
            single_values[name], kinds[name] = text_column(fit, name).to_numpy(dtype=object)[idx], "categorical"
    return dict(
        X_fair=fm.X[idx], X_fair_raw=raw, columns=fm.columns, sources=fm.sources, X_base=bm.X[idx], y=y[idx],
        groups=groups[idx], segment=text_column(fit, "profitability_segment").to_numpy(dtype=object)[idx],
        single_values=single_values, single_kinds=kinds, config=config, total_records=len(y),
        settings=settings,
    )


def run_assessment(inputs: dict[str, object]) -> dict | None:
    """``assessment.assess`` on ``_assessment_inputs``, single-threaded (OpenMP/BLAS)."""
    with threadpool_limits(limits=1):
        return assess(**inputs)  # type: ignore[arg-type]


def _apply_assessment(models: dict[str, AnomalyModel], result: dict | None, leak_auc: float) -> None:
    """Store the assessment in ``fair.assessment`` (metrics.json ``anomaly_models.assessment``), and the
    provenance-based leakage flags (single-feature out-of-fold ROC-AUC) in every model's ``leakage``."""
    fair = models.get("fair")
    if result is None or fair is None:
        return
    fair.assessment = result  # metrics.json: anomaly_models.assessment
    for m in models.values():
        if m.skipped:
            continue
        own = set(m.features)
        flags = [f"{r['feature']} alone has out-of-fold ROC-AUC {r['roc_auc']:.3f} (>= {leak_auc})"
                 for r in result["single_feature_auc"]
                 if r["feature"] in own and math.isfinite(r["roc_auc"]) and r["roc_auc"] >= leak_auc]
        m.leakage = flags + [f for f in m.leakage if f.startswith("cross-validated ROC-AUC")]


# ============================================================================================ clustering
FEATURE_WORDS: dict[str, tuple[str, str]] = {
    # feature: (word when the cluster is high, word when low)
    "txn_consistency_error": ("inconsistent transaction rate", "consistent transaction rate"),
    "transaction_value_volatility": ("high volatility", "low volatility"),
    "seasonality_std": ("seasonally concentrated", "seasonally even"),
    "seasonality_imbalance": ("seasonally concentrated", "seasonally even"),
    "seasonality_entropy_norm": ("seasonally even", "seasonally concentrated"),
    "avg_transactions_per_month": ("frequent buyers", "infrequent buyers"),
    "transaction_count": ("many transactions", "few transactions"),
    "total_revenue": ("high revenue", "low revenue"),
}

FEATURE_FAMILY: dict[str, str] = {
    **{f: "transaction stability" for f in STABILITY_FEATURES},
    **{f: "seasonal preference" for f in SEASONALITY_FEATURES},
    "customer_age_days": "lifecycle stage",
    "total_revenue": "value",
    "net_profit": "value",
    "comprehensive_customer_score": "value",
    "revenue_per_score": "value",
    "value_mismatch_z": "value",
}


@dataclass
class ClusteringResult:
    skipped: bool
    note: str
    n_records: int = 0
    n_fit: int = 0
    features: list[str] = field(default_factory=list)
    feature_notes: list[str] = field(default_factory=list)
    k_scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    chosen_k: int | None = None
    k_selection: str = ""
    assignments: pd.DataFrame = field(default_factory=pd.DataFrame)
    profiles: pd.DataFrame = field(default_factory=pd.DataFrame)  # cluster_id, label, size, share, medians
    z_gaps: pd.DataFrame = field(default_factory=pd.DataFrame)  # cluster_id x feature
    terms: dict[int, list[dict[str, object]]] = field(default_factory=dict)
    composition: pd.DataFrame = field(default_factory=pd.DataFrame)
    projection: pd.DataFrame = field(default_factory=pd.DataFrame)
    centroids_2d: np.ndarray | None = None
    explained_variance: list[float] = field(default_factory=list)
    label_reference: str = "other clusters"  # what the labels are named against: "population" or "other clusters"


ASSIGNMENT_COLUMNS = ["customer_record_id", "cluster_id", "cluster_label"]


def empty_assignments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_record_id": pd.Series(dtype=object),
            "cluster_id": pd.Series(dtype="int64"),
            "cluster_label": pd.Series(dtype=object),
        }
    )


CLUSTER_PRUNE_SPEARMAN = 0.9  # a clustering feature this correlated with an earlier one is dropped
SEASONAL_MIN_TRANSACTIONS = 8  # fewer transactions cannot show a seasonal pattern (1 or 2 look concentrated)
CLUSTER_BOOTSTRAPS = 20
CLUSTER_NULL_PERMUTATIONS = 5
CLUSTER_STABILITY_ROWS = 1000


def _prune_correlated(fm: FeatureMatrix, idx: np.ndarray) -> FeatureMatrix:
    """Drop clustering columns with |Spearman| >= CLUSTER_PRUNE_SPEARMAN to an earlier kept column (noted)."""
    if fm.X.shape[1] < 2:
        return fm
    rho = pd.DataFrame(fm.X[idx]).corr(method="spearman").abs().fillna(0.0).to_numpy()
    keep: list[int] = []
    notes = list(fm.notes)
    note_sources = list(fm.note_sources)
    for j in range(fm.X.shape[1]):
        twin = next((i for i in keep if rho[i, j] >= CLUSTER_PRUNE_SPEARMAN), None)
        if twin is None:
            keep.append(j)
        else:
            notes.append(f"{fm.columns[j]}: dropped before KMeans, |Spearman| {rho[twin, j]:.2f} with "
                         f"{fm.columns[twin]}")
            note_sources.append(fm.sources[j])
    if len(keep) == fm.X.shape[1]:
        return fm
    return FeatureMatrix(X=fm.X[:, keep], columns=[fm.columns[i] for i in keep], sources=[fm.sources[i] for i in keep],
                         kinds=[fm.kinds[i] for i in keep], notes=notes,
                         dropped=fm.dropped + [fm.columns[j] for j in range(fm.X.shape[1]) if j not in keep],
                         note_sources=note_sources)


def _cluster_stability(Z: np.ndarray, models: dict[int, KMeans], k_scores: pd.DataFrame, segment: np.ndarray,
                       config: ReportConfig) -> pd.DataFrame:
    """Per K: the share of bootstrap resamples whose silhouette picks this K (``bootstrap_k_share``), the mean
    ARI of the bootstrap partition with the full-data partition (``bootstrap_ari``), the ARI with the segment
    (``ari_vs_segment``), and the mean silhouette on column-wise permuted data (``null_silhouette``: a null
    reference with no cluster structure). On at most CLUSTER_STABILITY_ROWS records (stated in the note)."""
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(config.random_state)
    rows = np.arange(len(Z))
    if len(rows) > CLUSTER_STABILITY_ROWS:
        rows = np.sort(rng.choice(rows, CLUSTER_STABILITY_ROWS, replace=False))
    Zs = Z[rows]
    ks = [int(k) for k in k_scores["k"]]
    full = {k: models[k].predict(Zs) for k in ks}
    wins = dict.fromkeys(ks, 0)
    ari: dict[int, list[float]] = {k: [] for k in ks}
    null: dict[int, list[float]] = {k: [] for k in ks}
    n_sil = min(500, len(Zs))

    def silhouette_of(X: np.ndarray, labels: np.ndarray, seed: int) -> float:
        # subsample first, then check: a subsample of a bootstrap can hold a single cluster (seen at 20k records)
        if n_sil < len(X):
            keep = np.random.default_rng(seed).choice(len(X), n_sil, replace=False)
            X, labels = X[keep], labels[keep]
        if not 2 <= len(np.unique(labels)) <= len(X) - 1:
            return math.nan
        return float(silhouette_score(X, labels))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in range(CLUSTER_BOOTSTRAPS):
            pick = rng.integers(0, len(Zs), len(Zs))
            best, best_k = -np.inf, None
            for k in ks:
                if len(np.unique(Zs[pick], axis=0)) <= k:
                    continue
                km = KMeans(n_clusters=k, n_init=3, random_state=config.random_state + b).fit(Zs[pick])
                sil = silhouette_of(Zs[pick], km.labels_, config.random_state + b)
                ari[k].append(float(adjusted_rand_score(full[k], km.predict(Zs))))
                if math.isfinite(sil) and sil > best:
                    best, best_k = sil, k
            if best_k is not None:
                wins[best_k] += 1
        for r in range(CLUSTER_NULL_PERMUTATIONS):
            Zp = np.column_stack([rng.permutation(Zs[:, j]) for j in range(Zs.shape[1])])
            for k in ks:
                km = KMeans(n_clusters=k, n_init=3, random_state=config.random_state + r).fit(Zp)
                null[k].append(silhouette_of(Zp, km.labels_, config.random_state + r))
    out = k_scores.copy()
    out["bootstrap_k_share"] = [wins[k] / CLUSTER_BOOTSTRAPS for k in ks]
    out["bootstrap_ari"] = [float(np.mean(ari[k])) if ari[k] else math.nan for k in ks]
    out["ari_vs_segment"] = [float(adjusted_rand_score(segment[rows], full[k])) for k in ks]
    out["null_silhouette"] = [float(np.nanmean(null[k])) if np.isfinite(null[k]).any() else math.nan for k in ks]
    out["stability_records"] = len(rows)  # the (sampled) anomaly records behind the four columns above
    return out


def _quarter_shares(frame: pd.DataFrame) -> np.ndarray:
    """Add-one shrunk quarter shares ((q + 1) / (n + 4)) of records with at least SEASONAL_MIN_TRANSACTIONS
    transactions; NaN rows for the others."""
    counts = np.column_stack([numeric_column(frame, f"q{q}_transactions") for q in range(1, 5)])
    total = np.nansum(counts, axis=1)
    enough = np.isfinite(counts).all(axis=1) & (total >= SEASONAL_MIN_TRANSACTIONS)
    return np.where(enough[:, None], (counts + 1) / (total[:, None] + 4), np.nan)


def _quarter_term(anomalies: pd.DataFrame, labels: np.ndarray, cluster: int,
                  population_shares: np.ndarray | None = None) -> str | None:
    """'Qn-heavy' when the cluster's mean quarter share (``_quarter_shares``) is >= 0.35 and >= 0.10 above the
    population's (``population_shares``: the mean shares of every record), else above the other clusters'."""
    shares = _quarter_shares(anomalies)
    if not np.isfinite(shares).any():
        return None
    inside = labels == cluster
    if not inside.any() or (population_shares is None and inside.all()):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mine = np.nanmean(shares[inside], axis=0)
        rest = population_shares if population_shares is not None else np.nanmean(shares[~inside], axis=0)
    if not np.isfinite(mine).any():
        return None
    q = int(np.nanargmax(mine))
    if mine[q] >= 0.35 and np.isfinite(rest[q]) and mine[q] - rest[q] >= 0.10:
        return f"Q{q + 1}-heavy"
    return None


@dataclass(frozen=True)
class PopulationReference:
    """Every record's median and SD per clustering feature, and mean quarter shares: what cluster labels are
    named against (``population_reference``)."""

    median: np.ndarray
    sd: np.ndarray
    quarter_shares: np.ndarray | None
    records: int
    features: tuple[str, ...] = ()

    def select(self, features: Sequence[str]) -> PopulationReference:
        """The reference of these features (each feature's median and SD are computed on their own)."""
        at = [self.features.index(f) for f in features]
        return replace(self, median=self.median[at], sd=self.sd[at], features=tuple(features))


def frame_with(population: Any, columns: Sequence[str]) -> pd.DataFrame:
    """Every record of ``population`` with at least ``columns``: the frame itself, or a ``Population`` read in
    bounded memory (``warehouse.population``) asked for just these columns (the report's ``frame_of`` too)."""
    return population if isinstance(population, pd.DataFrame) else population.frame(columns)


def _records(population: Any) -> pd.DataFrame:
    """The frame of every record of ``population`` (a ``Population``: its base columns)."""
    return population if isinstance(population, pd.DataFrame) else population.base


def population_reference(population: Any, features: Sequence[str]) -> PopulationReference:
    """Median and SD (ddof=1) over every record of ``population`` (a frame, or a ``Population`` read a column at a
    time) for each feature (missing values left out)."""
    med, sd = [], []
    for feature in features:
        v = numeric_column(frame_with(population, [feature]), feature)
        v = v[np.isfinite(v)]
        med.append(float(np.median(v)) if len(v) else math.nan)
        sd.append(float(np.std(v, ddof=1)) if len(v) > 1 else math.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        shares = np.nanmean(_quarter_shares(frame_with(population, [f"q{q}_transactions" for q in range(1, 5)])),
                            axis=0) if len(population) else None
    if shares is not None and not np.isfinite(shares).any():
        shares = None
    return PopulationReference(np.asarray(med), np.asarray(sd), shares, len(population), tuple(features))


def _cluster_gaps(z: np.ndarray, labels: np.ndarray, clusters: list[int], features: Sequence[str],
                  raw: np.ndarray | None, reference: PopulationReference | None) -> pd.DataFrame:
    """Per cluster and feature: (cluster median - population median) / population SD with a ``reference``,
    else the cluster's median z minus the other clusters' median z."""
    gaps = pd.DataFrame(index=clusters, columns=list(features), dtype=float)
    for c in clusters:
        inside = labels == c
        for j, feature in enumerate(features):
            if reference is not None and raw is not None:
                sd = reference.sd[j]
                gap = (float(np.median(raw[inside, j])) - reference.median[j]) / sd if sd > 0 else 0.0
                gaps.loc[c, feature] = gap if math.isfinite(gap) else 0.0
                continue
            rest = z[~inside, j]
            gaps.loc[c, feature] = float(np.median(z[inside, j]) - (np.median(rest) if len(rest) else 0.0))
    return gaps


def cluster_labels(
    z: np.ndarray,
    labels: np.ndarray,
    features: Sequence[str],
    config: ReportConfig,
    anomalies: pd.DataFrame | None = None,
    raw: np.ndarray | None = None,
    reference: PopulationReference | None = None,
) -> tuple[dict[int, str], dict[int, list[dict[str, object]]], pd.DataFrame]:
    """Short label per cluster from the features whose cluster median differs most from the population: with a
    ``reference`` (every record), the gap is (cluster median of ``raw`` - population median) / population SD,
    so "high volatility" means high for a customer, not only higher than the other cluster; without one, the
    median z-score (``z``) against the other clusters' (the old, relative naming)."""
    clusters = sorted(set(labels.tolist()))
    gaps = _cluster_gaps(z, labels, clusters, features, raw, reference)
    names: dict[int, str] = {}
    terms: dict[int, list[dict[str, object]]] = {}
    for c in clusters:
        ordered = sorted(features, key=lambda f: (-abs(gaps.loc[c, f]), f))
        words: list[str] = []
        chosen: list[dict[str, object]] = []
        for feature in ordered:
            gap = float(gaps.loc[c, feature])
            if abs(gap) < config.label_min_z_gap or len(words) >= config.label_max_terms:
                break
            high, low = FEATURE_WORDS.get(feature, (f"high {feature}", f"low {feature}"))
            word = high if gap > 0 else low
            if word in words:
                continue
            words.append(word)
            chosen.append(
                {
                    "feature": feature,
                    "direction": "high" if gap > 0 else "low",
                    "z_gap": gap,
                    "family": FEATURE_FAMILY.get(feature, "other"),
                }
            )
        if anomalies is not None:
            qterm = _quarter_term(anomalies, labels, c, reference.quarter_shares if reference is not None else None)
            if qterm:
                words.append(qterm)
                chosen.append(
                    {
                        "feature": "q_share",
                        "direction": qterm,
                        "z_gap": math.nan,
                        "family": "seasonal preference",
                    }
                )
        names[c] = ", ".join(words) if words else "typical anomaly profile"
        terms[c] = chosen
    seen: dict[str, int] = {}
    for c in clusters:
        seen[names[c]] = seen.get(names[c], 0) + 1
    for c in clusters:
        if seen[names[c]] > 1:
            names[c] = f"{names[c]} (cluster {c})"
    gaps.index.name = "cluster_id"
    return names, terms, gaps


def anomaly_clusters(anomalies: pd.DataFrame, config: ReportConfig,
                     population: pd.DataFrame | PopulationReference | None = None) -> ClusteringResult:
    """KMeans on the anomaly records (standardised CLUSTER_FEATURES); K by silhouette or ``fixed_k``. Labels are
    named against ``population`` (every record, e.g. the fit mart, or its ``population_reference`` over
    ``CLUSTER_FEATURES``) when given, else against the other clusters.

    Runs single-threaded (OpenMP/BLAS): identical results on any machine, and no thread oversubscription
    slow-down when the host is busy.
    """
    with threadpool_limits(limits=1):
        return _anomaly_clusters(anomalies, config, population)


# the columns of the anomaly records that anomaly_clusters reads
CLUSTER_INPUT_COLUMNS: tuple[str, ...] = (
    "customer_record_id", "profitability_segment", "lifecycle_stage", "seasonal_preference",
    *CLUSTER_FEATURES, *(f"q{q}_transactions" for q in range(1, 5)),
)


def cluster_inputs(anomalies: pd.DataFrame, population: pd.DataFrame) -> tuple[pd.DataFrame, PopulationReference]:
    """What ``anomaly_clusters`` needs, small enough to send to another process: the anomaly records' columns it
    reads, and the population's reference instead of the population (the same figures: each feature's median
    and SD are computed on their own)."""
    columns = [c for c in dict.fromkeys(CLUSTER_INPUT_COLUMNS) if c in anomalies.columns]
    return anomalies[columns], population_reference(population, CLUSTER_FEATURES)


def _anomaly_clusters(anomalies: pd.DataFrame, config: ReportConfig,  # noqa: C901 - K search, fit, labels and profiles of one clustering; owned by #9
                      population: pd.DataFrame | PopulationReference | None = None) -> ClusteringResult:
    """Long: K search, fit, labels and profiles of one clustering (#9)."""
    n = len(anomalies)
    if n < 3:
        return ClusteringResult(
            skipped=True,
            n_records=n,
            note=f"clustering skipped: {n} anomaly record(s); at least 3 are needed for 2 clusters with a "
            "silhouette score",
        )
    fm = feature_matrix(anomalies, CLUSTER_FEATURES, [], config, dtype=np.float64)
    if fm.X.shape[1] == 0:
        return ClusteringResult(
            skipped=True,
            n_records=n,
            feature_notes=fm.notes,
            note="clustering skipped: every clustering feature is missing or constant",
        )
    idx = bounded_indices(n, config.cluster_rows, config.random_state)
    fm = _prune_correlated(fm, idx)
    scaler = StandardScaler().fit(fm.X[idx])
    Z_all = scaler.transform(fm.X)
    Z_fit = Z_all[idx]
    n_distinct = int(pd.DataFrame(Z_fit).drop_duplicates().shape[0])
    k_cap = min(config.k_max, len(idx) - 1, n_distinct)
    if n_distinct < 2 or k_cap < config.k_min:
        return ClusteringResult(
            skipped=True,
            n_records=n,
            feature_notes=fm.notes,
            features=fm.columns,
            note=f"clustering skipped: only {n_distinct} distinct anomaly profile(s); "
            f"K in {config.k_min}..{config.k_max} needs more",
        )
    rows = []
    models: dict[int, KMeans] = {}
    sil_n = min(config.silhouette_sample_size, len(idx))
    for k in range(config.k_min, k_cap + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            km = KMeans(n_clusters=k, n_init=config.n_init, random_state=config.random_state).fit(Z_fit)
        labels = km.labels_
        sil = math.nan
        if 2 <= len(np.unique(labels)) <= len(idx) - 1:
            sil = float(
                silhouette_score(
                    Z_fit,
                    labels,
                    sample_size=sil_n if sil_n < len(idx) else None,
                    random_state=config.random_state,
                )
            )
        rows.append({"k": k, "silhouette": sil, "inertia": float(km.inertia_)})
        models[k] = km
    k_scores = pd.DataFrame(rows, columns=["k", "silhouette", "inertia"])
    segment_labels = text_column(anomalies, "profitability_segment", missing=MISSING).to_numpy(dtype=object)
    k_scores = _cluster_stability(Z_fit, models, k_scores, segment_labels[idx], config)
    if config.fixed_k is not None:
        k = min(config.fixed_k, k_cap)
        selection = f"fixed_k={config.fixed_k}" + (f" (capped to {k})" if k != config.fixed_k else "")
        if k not in models:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                models[k] = KMeans(n_clusters=k, n_init=config.n_init, random_state=config.random_state).fit(
                    Z_fit
                )
    else:
        valid = k_scores.dropna(subset=["silhouette"])
        if valid.empty:
            return ClusteringResult(
                skipped=True,
                n_records=n,
                feature_notes=fm.notes,
                features=fm.columns,
                k_scores=k_scores,
                note="clustering skipped: no K gave a valid silhouette",
            )
        best = valid.sort_values(["silhouette", "k"], ascending=[False, True], kind="mergesort").iloc[0]
        k = int(best["k"])
        selection = f"highest silhouette over K={config.k_min}..{k_cap}"
    km = models[k]
    raw = km.predict(Z_all)
    # stable ids: largest cluster first, ties by smallest raw label
    sizes = np.bincount(raw, minlength=k)
    order = sorted(range(k), key=lambda c: (-sizes[c], c))
    remap = np.empty(k, dtype=np.int64)
    for new, old in enumerate(order):
        remap[old] = new
    labels_all = remap[raw]
    centers = km.cluster_centers_[order]
    if isinstance(population, PopulationReference):
        reference: PopulationReference | None = population.select(fm.columns)
    else:
        reference = population_reference(population, fm.columns) if population is not None else None
    names, terms, gaps = cluster_labels(Z_all, labels_all, fm.columns, config, anomalies, fm.X, reference)
    ids = text_column(anomalies, "customer_record_id", missing="").to_numpy(dtype=object)
    assignments = pd.DataFrame(
        {
            "customer_record_id": ids,
            "cluster_id": labels_all.astype("int64"),
            "cluster_label": [names[c] for c in labels_all],
        }
    )
    assignments = assignments.sort_values("customer_record_id", kind="mergesort").reset_index(drop=True)
    prof_rows = []
    for c in sorted(names):
        inside = labels_all == c
        row: dict[str, object] = {
            "cluster_id": c,
            "cluster_label": names[c],
            "size": int(inside.sum()),
            "share": float(inside.mean()),
        }
        for feature in fm.columns:
            values = numeric_column(anomalies, feature)[inside]
            values = values[np.isfinite(values)]
            row[feature] = float(np.median(values)) if len(values) else math.nan
        prof_rows.append(row)
    profiles = pd.DataFrame(prof_rows)
    comp_rows = []
    for dim in ("profitability_segment", "lifecycle_stage", "seasonal_preference"):
        values = text_column(anomalies, dim, missing=MISSING)
        table = pd.crosstab(labels_all, values.to_numpy())
        for c in table.index:
            total = int(table.loc[c].sum())
            for value in sorted(table.columns):
                count = int(table.loc[c, value])
                if count:
                    comp_rows.append(
                        {
                            "dimension": dim,
                            "cluster_id": int(c),
                            "value": str(value),
                            "count": count,
                            "share": count / total,
                        }
                    )
    composition = pd.DataFrame(comp_rows, columns=["dimension", "cluster_id", "value", "count", "share"])
    n_comp = min(2, Z_fit.shape[1])
    pca = PCA(n_components=n_comp, random_state=config.random_state).fit(Z_fit)
    plot_idx = bounded_indices(n, config.plot_sample_size, config.random_state)
    proj = pca.transform(Z_all[plot_idx])
    cent = pca.transform(centers)
    if n_comp == 1:
        proj = np.column_stack([proj, np.zeros(len(proj))])
        cent = np.column_stack([cent, np.zeros(len(cent))])
    projection = pd.DataFrame({"pc1": proj[:, 0], "pc2": proj[:, 1], "cluster_id": labels_all[plot_idx]})
    return ClusteringResult(
        skipped=False,
        note="",
        n_records=n,
        n_fit=int(len(idx)),
        features=fm.columns,
        feature_notes=fm.notes,
        k_scores=k_scores,
        chosen_k=k,
        k_selection=selection,
        assignments=assignments,
        profiles=profiles,
        z_gaps=gaps.reset_index(),
        terms=terms,
        composition=composition,
        projection=projection,
        centroids_2d=cent,
        explained_variance=[float(v) for v in pca.explained_variance_ratio_],
        label_reference=f"population ({reference.records} records)" if reference is not None else "other clusters",
    )
