"""metrics.json: every figure the report quotes, under stable keys, plus the run metadata."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from .. import inference as inf
from ..analysis import segments_without_anomalies
from ..modeling import AnomalyModel, AnomalyModelsResult, ClusteringResult, SegmentTreeResult, top_importances
from ..profile import DataProfile
from . import text
from .context import ReportContext

METRICS_SCHEMA_VERSION = 2


def json_ready(obj: Any, digits: int = 6) -> Any:
    """Recursively convert to JSON types: floats to ``digits`` significant digits, NaN/inf -> None."""
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v, digits) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return [json_ready(r, digits) for r in obj.to_dict(orient="records")]
    if isinstance(obj, np.ndarray):
        return [json_ready(v, digits) for v in obj.tolist()]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        v = float(obj)
        if not math.isfinite(v):
            return None
        return float(f"{v:.{digits}g}")
    if obj is None or isinstance(obj, str):
        return obj
    if obj is pd.NA or obj is pd.NaT:
        return None
    return str(obj)



def metrics(ctx: ReportContext, charts: list[str]) -> dict[str, Any]:
    """The metrics.json payload (before ``json_ready``); the run's end time is added when it is written."""
    config, s, dq = ctx.config, ctx.stats, ctx.dq
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "run": ctx.run.to_dict(),
        "grain": ctx.grain,
        "sample": ctx.overview,
        "analysis_sample": ctx.sample.to_dict() if ctx.sample is not None else None,
        "segments": {
            "order": list(ctx.segment_order),
            "by_segment": {row["profitability_segment"]: {k: v for k, v in row.items() if k != "profitability_segment"}
                           for row in ctx.summary.to_dict(orient="records")},
            "without_anomalies": segments_without_anomalies(ctx.summary),
            "anomaly_rate_warning": ctx.rate_warning,
        },
        "features": _feature_metrics(s.comparison, s.significance),
        "stat_sample_size_per_group": config.stat_sample_size,
        "rule_lift": s.rules,
        "value_realization": {c.group: {k: v for k, v in c.__dict__.items() if k != "group"} for c in s.correlations},
        "crosstabs": {"rows": s.cross, "association": {
            r["dimension"]: {k: v for k, v in r.items() if k != "dimension"}
            for r in s.associations.to_dict(orient="records")}},
        "clustering": _clustering_metrics(ctx.models.clustering),
        "segment_tree": _segment_tree_metrics(ctx.models.seg_tree, config.top_importances),
        "anomaly_models": _model_metrics(ctx.models.anomaly, config.top_importances),
        "leakage": {name: m.leakage for name, m in ctx.models.anomaly.models.items() if not m.skipped},
        "data_profile": _profile_metrics(ctx.profile),
        "segment_definition": _segment_definition(ctx.profile),
        "inference": _inference_metrics(ctx.inference),
        "recommendations": [asdict(r) for r in ctx.recs],
        "top_anomalies": ctx.anomalies.head(config.top_anomalies),
        "anomalies": {"records": len(ctx.anomalies),
                      "customers": int(ctx.anomalies["customer_id"].nunique()) if len(ctx.anomalies) else 0,
                      "file": "anomalies.csv"},
        "changes": _change_metrics(ctx.changes),
        "data_quality": {
            "reconciliation": dq.reconciliation,
            "issues_by_reason": ctx.dq_groups,
            "total_issues": dq.total_issues,
            "rejected_rows": dq.rejected_rows,
            "conflicting_customers": ctx.conflicts,
            "check_warnings": list(ctx.check_warnings),
            "checks_href": ctx.checks_href,
            "issues_file": "data_quality_issues.csv",
        },
        "write_back": {"anomaly_clusters_rows": len(ctx.models.assignments),
                       "anomaly_model_scores_rows": len(ctx.models.anomaly.scores)},
        "charts": [f"{name}.png" for name in charts],
        "notes": list(ctx.notes),
        "config": config.to_dict(),
    }


def _feature_metrics(comparison: pd.DataFrame, significance: pd.DataFrame) -> dict[str, Any]:
    features: dict[str, Any] = {}
    sig = significance.set_index("feature_name")
    for row in comparison.to_dict(orient="records"):
        name = row.pop("feature_name")
        entry = dict(row)
        if name in sig.index:
            entry.update(sig.loc[name].drop(["n_anomaly", "n_normal"]).to_dict())
        features[name] = entry
    return features


def _change_metrics(changes: pd.DataFrame | None) -> dict[str, Any] | None:
    if changes is None:
        return None
    counts = changes["change_type"].astype(str).value_counts().sort_index() if len(changes) else pd.Series(dtype=int)
    return {"customers": len(changes), "by_type": {str(k): int(v) for k, v in counts.items()}}


def _clustering_metrics(clustering: ClusteringResult) -> dict[str, Any]:
    out: dict[str, Any] = {"skipped": clustering.skipped, "note": clustering.note, "n_records": clustering.n_records}
    if clustering.skipped:
        return out
    out.update({
        "n_fit": clustering.n_fit,
        "features": clustering.features,
        "feature_notes": clustering.feature_notes,
        "k_selection": clustering.k_selection,
        "chosen_k": clustering.chosen_k,
        "k_scores": clustering.k_scores,
        "clusters": {str(r["cluster_id"]): r for r in clustering.profiles.to_dict(orient="records")},
        "z_gaps": clustering.z_gaps,
        "terms": {str(k): v for k, v in clustering.terms.items()},
        "composition": clustering.composition,
        "pca_explained_variance": clustering.explained_variance,
        "label_reference": clustering.label_reference,
    })
    return out


def _segment_tree_metrics(seg_tree: SegmentTreeResult, top: int) -> dict[str, Any]:
    out: dict[str, Any] = {"skipped": seg_tree.skipped, "note": seg_tree.note}
    if seg_tree.skipped:
        return out
    out.update({
        "n_records": seg_tree.n_records,
        "n_fit": seg_tree.n_fit,
        "classes": seg_tree.classes,
        "accuracy_in_sample": seg_tree.accuracy_in_sample,
        "accuracy_cv": seg_tree.accuracy_cv,
        "cv_folds": seg_tree.cv_folds,
        "cv_note": seg_tree.cv_note,
        "per_class": {r["segment"]: {k: v for k, v in r.items() if k != "segment"}
                      for r in seg_tree.per_class.to_dict(orient="records")},
        "importances_top": top_importances(seg_tree.importances, top),
        "threshold_feature": seg_tree.threshold_feature,
        "threshold_statement": seg_tree.threshold_statement,
        "feature_notes": seg_tree.feature_notes,
        "top_rules": seg_tree.top_rules.head(10),
    })
    return out


def _model_metrics(models: AnomalyModelsResult, top: int) -> dict[str, Any]:
    fair = models.models.get("fair")
    out: dict[str, Any] = {"skipped": models.skipped, "note": models.note, "n_records": models.n_records,
                           "n_anomalies": models.n_anomalies, "scores_source": models.scores_source, "models": {},
                           "assessment": fair.assessment if fair is not None and not fair.skipped else None}
    for name, m in models.models.items():
        entry: dict[str, Any] = {"description": m.description, "skipped": m.skipped, "note": m.note,
                                 "leakage_by_design": m.leakage_by_design}
        if not m.skipped:
            entry.update({
                "features": m.features,
                "n_fit": m.n_fit,
                "in_sample": m.in_sample,
                "cv": m.cv,
                "cv_repeated_grouped": _repeated_metrics(m),
                "cv_folds": m.cv_folds,
                "cv_note": m.cv_note,
                "importances_top": top_importances(m.importances, top),
                "leakage_flags": m.leakage,
                "leaky": bool(m.leakage),
                "feature_notes": m.feature_notes,
            })
            if name == "fair":
                entry["top_rules"] = m.top_rules.head(10)
        out["models"][name] = entry
    return out


def _repeated_metrics(m: AnomalyModel) -> dict[str, Any] | None:
    cv = m.cv_repeated
    if cv is None:
        return None
    return {
        "note": cv.note,
        "repeats": cv.repeats,
        "folds": cv.folds,
        "records": cv.n_records,
        "customers": cv.n_customers,
        "sampled": cv.sampled,
        "metrics": cv.summary(),
        "roc_auc_minus_baseline": m.vs_baseline,
    }


def _profile_metrics(profile: DataProfile) -> dict[str, Any]:
    return {
        "records": profile.records,
        "constant_columns": list(profile.constant_columns),
        "all_null_columns": list(profile.all_null_columns),
        "identical_columns": [list(pair) for pair in profile.identical_columns],
        "removed_before_modelling": list(profile.redundant_columns),
    }


def _segment_definition(profile: DataProfile) -> dict[str, Any]:
    return {
        "band_feature": profile.band_feature,
        "bands": [asdict(b) for b in profile.bands],
        "statement": text.segment_definition(profile),
    }


def _inference_metrics(result: inf.InferenceResult) -> dict[str, Any]:
    grains = {result.primary.grain: inf.grain_summary(result.primary)}
    tests = {result.primary.grain: inf.tests_table(result.primary)}
    if result.other is not None and result.other.grain not in grains:
        grains[result.other.grain] = inf.grain_summary(result.other)
        tests[result.other.grain] = inf.tests_table(result.other)
    settings = inf.InferenceSettings()
    return {
        "question": "within its segment, does a customer's behaviour explain why its retention does not fit?",
        "primary_grain": result.primary.grain,
        "other_grain_note": result.other_note,
        "grains": grains,
        "verdicts": inf.verdict_table(result),
        "tests": tests,
        "method": {
            "unit": "customer: records weighted 1 / (records of the customer); one unit per segment, customer "
            "and group",
            "strata": "segments holding both anomalies and normal records",
            "numeric_test": "van Elteren (stratified permutation moments, normal approximation)",
            "categorical_test": "Cochran-Mantel-Haenszel (statsmodels StratifiedTable), per level and per rule",
            "effect": "Cliff's delta, strata combined with weights n_a n_n / (n_a + n_n)",
            "effect_scale": {"negligible": inf.ROMANO[0], "small": inf.ROMANO[1], "medium": inf.ROMANO[2]},
            "ci": f"{settings.confidence:.0%} percentile, {settings.n_bootstrap} customer-level bootstrap "
            f"resamples, for the best test and up to {settings.max_ci_tests} significant tests per dimension",
            "multiple_testing": "Benjamini-Hochberg within each dimension's family",
            "contrasts": ["anomaly vs normal", "above vs normal", "below vs normal"],
            "alpha": settings.alpha,
            "power_for_mde": settings.power,
            "sample_size_cap": settings.sample_size,
        },
    }


