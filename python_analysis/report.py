"""Assemble the segment-fit report: metrics (JSON), figures (PNG), markdown and self-contained HTML.

``build_report`` is pure (marts in, ``Report`` out). ``write_report`` writes the files; its only
non-deterministic output is the ``generated_at`` field in metrics.json.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import inference as inf
from . import plots
from .analysis import (
    DataQualitySummary,
    anomaly_mask,
    anomaly_rate_check,
    conflicting_customers,
    crosstab_association,
    crosstab_table,
    data_quality_summary,
    feature_comparison,
    feature_significance,
    rule_lift_table,
    sample_overview,
    segment_summary,
    segments_without_anomalies,
    text_column,
    top_anomalies,
    value_realization,
)
from .config import (
    SEASONALITY_FEATURES,
    STABILITY_FEATURES,
    ReportConfig,
)
from .modeling import (
    MODEL_NAMES,
    AnomalyModel,
    AnomalyModelsResult,
    ClusteringResult,
    SegmentTreeResult,
    anomaly_clusters,
    anomaly_models,
    empty_assignments,
    model_matrix,
    segment_tree,
    top_importances,
)
from .profile import DataProfile, data_profile
from .verdicts import recommendations, summary_sentence

CHART_NAMES: tuple[str, ...] = (
    "transaction_behaviour",
    "volatility",
    "seasonal_distribution",
    "value_realization",
    "anomaly_rate",
    "silhouette",
    "clusters",
    "decision_tree",
    "feature_importances",
)

METRICS_SCHEMA_VERSION = 1


# ============================================================================================ document model
@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    name: str
    caption: str


@dataclass(frozen=True)
class Code:
    text: str
    title: str


@dataclass(frozen=True)
class Link:
    text: str
    href: str


Block = Heading | Para | Bullets | Table | Image | Code | Link


def _md_escape(text: str) -> str:
    out = str(text).replace("\r", " ").replace("\n", " ")
    for ch in ("\\", "`", "*", "|", "<", ">", "[", "]"):
        out = out.replace(ch, "\\" + ch)
    return out


def render_markdown(title: str, blocks: Sequence[Block]) -> str:
    lines = [f"# {_md_escape(title)}", ""]
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + _md_escape(block.text), ""]
        elif isinstance(block, Para):
            lines += [_md_escape(block.text), ""]
        elif isinstance(block, Bullets):
            lines += [f"- {_md_escape(item)}" for item in block.items] + [""]
        elif isinstance(block, Table):
            if block.caption:
                lines += [f"Table: {_md_escape(block.caption)}", ""]
            lines.append("| " + " | ".join(_md_escape(c) for c in block.columns) + " |")
            lines.append("|" + "|".join("---" for _ in block.columns) + "|")
            for row in block.rows:
                lines.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
            if not block.rows:
                lines.append("| " + " | ".join("" for _ in block.columns) + " |")
            lines.append("")
        elif isinstance(block, Image):
            lines += [f"![{_md_escape(block.caption)}](charts/{block.name}.png)", ""]
        elif isinstance(block, Code):
            fence = "~" * max(4, _longest_run(block.text, "~") + 1)
            lines += [f"{_md_escape(block.title)}:", "", fence, block.text.rstrip("\n"), fence, ""]
        elif isinstance(block, Link):
            lines += [
                f"[{_md_escape(block.text)}](<{block.href.replace('>', '%3E').replace(' ', '%20')}>)",
                "",
            ]
    return "\n".join(lines).rstrip("\n") + "\n"


def _longest_run(text: str, ch: str) -> int:
    best = run = 0
    for c in text:
        run = run + 1 if c == ch else 0
        best = max(best, run)
    return best


def _safe_href(href: str) -> str | None:
    scheme = href.strip().split(":", 1)[0].lower() if ":" in href else ""
    if scheme in {"javascript", "data", "vbscript"}:
        return None
    return href


HTML_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:0.5em 0 1.2em;font-size:0.88em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f2f2f2}
caption{caption-side:top;text-align:left;font-weight:600;padding:4px 0}
pre{background:#f6f8fa;padding:0.8em;overflow-x:auto;font-size:0.8em}
img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:0.9em;color:#555}
"""


def render_html(title: str, blocks: Sequence[Block], images: Mapping[str, bytes]) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{HTML_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 2), 6)
            parts.append(f"<h{level}>{esc(block.text)}</h{level}>")
        elif isinstance(block, Para):
            parts.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            rows = ["<table>"]
            if block.caption:
                rows.append(f"<caption>{esc(block.caption)}</caption>")
            rows.append(
                "<thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in block.columns) + "</tr></thead>"
            )
            rows.append("<tbody>")
            for row in block.rows:
                rows.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
            rows.append("</tbody></table>")
            parts.append("".join(rows))
        elif isinstance(block, Image):
            data = images.get(block.name)
            if data is None:
                continue
            b64 = base64.b64encode(data).decode("ascii")
            parts.append(
                f'<figure><img src="data:image/png;base64,{b64}" alt="{esc(block.caption)}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
        elif isinstance(block, Code):
            parts.append(
                f"<details><summary>{esc(block.title)}</summary><pre>{esc(block.text)}</pre></details>"
            )
        elif isinstance(block, Link):
            href = _safe_href(block.href)
            if href is None:
                parts.append(
                    f"<p>{esc(block.text)}: {esc(block.href)} (link not rendered: unsafe scheme)</p>"
                )
            else:
                parts.append(f'<p><a href="{esc(href, quote=True)}">{esc(block.text)}</a></p>')
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


# ============================================================================================ formatting
def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "n/a"
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:.{digits}g}"


def _pct(value: Any, digits: int = 1) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return f"{v:.{digits}%}" if math.isfinite(v) else "n/a"


def _p(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a"
    if not math.isfinite(v):
        return "n/a"
    return f"{v:.2e}" if v < 0.001 else f"{v:.3f}"


def _rows(frame: pd.DataFrame, formats: Mapping[str, Any]) -> tuple[tuple[str, ...], ...]:
    out = []
    for record in frame.to_dict(orient="records"):
        out.append(
            tuple(
                formats.get(col, _num)(record[col])
                if col in formats or not isinstance(record[col], str)
                else record[col]
                for col in frame.columns
            )
        )
    return tuple(out)


def _table(
    frame: pd.DataFrame,
    formats: Mapping[str, Any] | None = None,
    caption: str = "",
    headers: Mapping[str, str] | None = None,
) -> Table:
    formats = formats or {}
    headers = headers or {}
    columns = tuple(headers.get(c, c) for c in frame.columns)
    return Table(columns=columns, rows=_rows(frame, formats), caption=caption)


def _str(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


# ============================================================================================ JSON
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


# ============================================================================================ report
@dataclass
class Report:
    metrics: dict[str, Any]
    figures: dict[str, Figure]
    markdown: str
    html: str
    anomaly_clusters: pd.DataFrame
    anomaly_model_scores: pd.DataFrame
    chart_png: dict[str, bytes] = field(default_factory=dict)


def _mart(marts: Mapping[str, pd.DataFrame], key: str, notes: list[str]) -> pd.DataFrame:
    frame = marts.get(key)
    if frame is None:
        notes.append(f"mart {key} was not provided; its section is empty")
        return pd.DataFrame()
    return frame


def build_report(
    marts: Mapping[str, pd.DataFrame],
    config: ReportConfig,
    *,
    check_warnings: Sequence[str] = (),
    data_docs_href: str | None = None,
    dq_summary: pd.DataFrame | None = None,
    grain: str = "all",
) -> Report:
    """Compute every statistic, model and chart, and render markdown + HTML. Pure and deterministic."""
    notes: list[str] = []
    fit = _mart(marts, "customer_segment_fit", notes).reset_index(drop=True)
    mask = anomaly_mask(fit)
    anomalies = marts.get("classification_anomalies")
    if anomalies is None:
        anomalies = fit[mask]
        notes.append("classification_anomalies not provided: anomalies taken from customer_segment_fit")
    anomalies = anomalies.reset_index(drop=True)

    summary = segment_summary(_mart(marts, "segment_retention_summary", notes))
    overview = sample_overview(fit, summary, anomalies, grain)
    rate_warning = anomaly_rate_check(summary, config)
    comparison = feature_comparison(_mart(marts, "anomaly_feature_comparison", notes))
    features = comparison["feature_name"].tolist()
    significance = feature_significance(fit, features, config)
    rules = rule_lift_table(_mart(marts, "anomaly_rule_lift", notes))
    correlations = value_realization(fit, config)
    cross = crosstab_table(_mart(marts, "anomaly_crosstabs", notes))
    associations = crosstab_association(_mart(marts, "anomaly_crosstabs", notes), config)
    seasonal = _mart(marts, "seasonal_distribution", notes)
    profile = data_profile(fit)
    inference, resegmentation = within_segment(fit, marts, profile, grain, config)
    clustering = anomaly_clusters(anomalies, config)
    # constant, all-null and duplicate (identical) columns are removed before modelling
    model_config = replace(
        config,
        extra_excluded_features=tuple(dict.fromkeys(config.extra_excluded_features + profile.redundant_columns)),
        segment_defining_feature=config.segment_defining_feature or profile.band_feature,
    )
    matrix = model_matrix(fit, model_config) if len(fit) else None
    seg_tree = segment_tree(fit, model_config, matrix)
    models = anomaly_models(fit, model_config, matrix)
    del matrix
    recs = recommendations(inference, clustering, resegmentation)
    dq = data_quality_summary(
        marts.get("input_row_reconciliation"), marts.get("data_quality_issues"), dq_summary
    )
    top = top_anomalies(anomalies, config.top_anomalies)
    conflicts = conflicting_customers(marts.get("duplicate_customer_keys"), fit)
    for skipped in (clustering, seg_tree, models):
        if skipped.skipped:
            notes.append(skipped.note)

    figures = _figures(fit, summary, seasonal, correlations, clustering, models, config)
    chart_png = {name: plots.figure_png(fig, config.dpi) for name, fig in figures.items()}

    assignments = clustering.assignments if not clustering.skipped else empty_assignments()
    scores = models.scores

    shared = {
        "config": config,
        "overview": overview,
        "summary": summary,
        "rate_warning": rate_warning,
        "comparison": comparison,
        "significance": significance,
        "rules": rules,
        "correlations": correlations,
        "cross": cross,
        "associations": associations,
        "clustering": clustering,
        "seg_tree": seg_tree,
        "models": models,
        "recs": recs,
        "profile": profile,
        "inference": inference,
        "dq": dq,
        "conflicts": conflicts,
        "top": top,
        "check_warnings": check_warnings,
        "data_docs_href": data_docs_href,
        "notes": notes,
    }
    metrics = _metrics(grain=grain, charts=sorted(figures), assignments=assignments, scores=scores, **shared)
    blocks = _blocks(fit=fit, figures=figures, **shared)
    title = "Segment fit report: do customers behave like their profitability segment?"
    return Report(
        metrics=json_ready(metrics),
        figures=figures,
        markdown=render_markdown(title, blocks),
        html=render_html(title, blocks, chart_png),
        anomaly_clusters=assignments,
        anomaly_model_scores=scores,
        chart_png=chart_png,
    )


def within_segment(
    fit: pd.DataFrame, marts: Mapping[str, pd.DataFrame], profile: DataProfile, grain: str, config: ReportConfig
) -> tuple[inf.InferenceResult, dict[str, inf.Resegmentation | None]]:
    """Within-segment tests under both grains, and the re-segmentation simulation per dimension. The segment-defining (band) feature and redundant columns are
    left out: inside a band the band feature only restates the segment."""
    rec = marts.get("input_row_reconciliation")
    dropped = 0
    if rec is not None and "dropped_by_grain" in rec.columns and len(rec):
        rows = rec.loc[text_column(rec, "source") == "customers", "dropped_by_grain"]
        dropped = int(pd.to_numeric(rows, errors="coerce").fillna(0).sum())
    excluded = profile.redundant_columns + ((profile.band_feature,) if profile.band_feature else ())
    settings = inf.InferenceSettings(random_state=config.random_state)
    rules = inf.rules_from_mart(marts.get("anomaly_rule_lift"))
    result = inf.within_segment_inference(
        fit, grain, other_grain_available=dropped == 0, rules=rules, excluded=excluded, settings=settings
    )
    return result, inf.resegmentations(fit, result, rules, excluded, settings)


def _figures(fit, summary, seasonal, correlations, clustering, models, config) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    if len(fit):
        figures["transaction_behaviour"] = plots.transaction_behaviour(fit, config)
        figures["volatility"] = plots.volatility(fit, config)
        overall = next(c for c in correlations if c.group == "all")
        figures["value_realization"] = plots.value_realization(fit, overall.pearson, overall.spearman, config)
    if len(seasonal):
        figures["seasonal_distribution"] = plots.seasonal_distribution(seasonal, config)
    if len(summary):
        figures["anomaly_rate"] = plots.anomaly_rate(summary, config)
    if not clustering.skipped:
        figures["silhouette"] = plots.silhouette(clustering, config)
        figures["clusters"] = plots.clusters(clustering, config)
    if not models.skipped:
        fair = models.models.get("fair")
        if fair is not None and not fair.skipped and fair.estimator is not None:
            figures["decision_tree"] = plots.decision_tree(fair, config)
        if any(not m.skipped for m in models.models.values()):
            figures["feature_importances"] = plots.feature_importances(models.models, config)
    return {name: figures[name] for name in CHART_NAMES if name in figures}


# ---------------------------------------------------------------------------------------------- metrics
def _metrics(**kw: Any) -> dict[str, Any]:
    config: ReportConfig = kw["config"]
    summary: pd.DataFrame = kw["summary"]
    significance: pd.DataFrame = kw["significance"]
    comparison: pd.DataFrame = kw["comparison"]
    clustering: ClusteringResult = kw["clustering"]
    seg_tree: SegmentTreeResult = kw["seg_tree"]
    models: AnomalyModelsResult = kw["models"]
    dq: DataQualitySummary = kw["dq"]

    features: dict[str, Any] = {}
    sig = significance.set_index("feature_name")
    for row in comparison.to_dict(orient="records"):
        name = row.pop("feature_name")
        entry = dict(row)
        if name in sig.index:
            entry.update(sig.loc[name].drop(["n_anomaly", "n_normal"]).to_dict())
        features[name] = entry

    segments = {
        row["profitability_segment"]: {k: v for k, v in row.items() if k != "profitability_segment"}
        for row in summary.to_dict(orient="records")
    }

    clustering_m: dict[str, Any] = {
        "skipped": clustering.skipped,
        "note": clustering.note,
        "n_records": clustering.n_records,
    }
    if not clustering.skipped:
        clustering_m.update(
            {
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
            }
        )

    seg_m: dict[str, Any] = {"skipped": seg_tree.skipped, "note": seg_tree.note}
    if not seg_tree.skipped:
        seg_m.update(
            {
                "n_records": seg_tree.n_records,
                "n_fit": seg_tree.n_fit,
                "classes": seg_tree.classes,
                "accuracy_in_sample": seg_tree.accuracy_in_sample,
                "accuracy_cv": seg_tree.accuracy_cv,
                "cv_folds": seg_tree.cv_folds,
                "cv_note": seg_tree.cv_note,
                "per_class": {
                    r["segment"]: {k: v for k, v in r.items() if k != "segment"}
                    for r in seg_tree.per_class.to_dict(orient="records")
                },
                "importances_top": top_importances(seg_tree.importances, config.top_importances),
                "threshold_feature": seg_tree.threshold_feature,
                "threshold_statement": seg_tree.threshold_statement,
                "feature_notes": seg_tree.feature_notes,
                "top_rules": seg_tree.top_rules.head(10),
            }
        )

    models_m: dict[str, Any] = {
        "skipped": models.skipped,
        "note": models.note,
        "n_records": models.n_records,
        "n_anomalies": models.n_anomalies,
        "scores_source": models.scores_source,
        "models": {},
    }
    for name, m in models.models.items():
        entry: dict[str, Any] = {
            "description": m.description,
            "skipped": m.skipped,
            "note": m.note,
            "leakage_by_design": m.leakage_by_design,
        }
        if not m.skipped:
            entry.update(
                {
                    "features": m.features,
                    "n_fit": m.n_fit,
                    "in_sample": m.in_sample,
                    "cv": m.cv,
                    "cv_repeated_grouped": _repeated_metrics(m),
                    "cv_folds": m.cv_folds,
                    "cv_note": m.cv_note,
                    "importances_top": top_importances(m.importances, config.top_importances),
                    "leakage_flags": m.leakage,
                    "leaky": bool(m.leakage),
                    "feature_notes": m.feature_notes,
                }
            )
            if name == "fair":
                entry["top_rules"] = m.top_rules.head(10)
        models_m["models"][name] = entry

    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "grain": kw["grain"],
        "sample": kw["overview"],
        "segments": {
            "by_segment": segments,
            "without_anomalies": segments_without_anomalies(summary),
            "anomaly_rate_warning": kw["rate_warning"],
        },
        "features": features,
        "stat_sample_size_per_group": config.stat_sample_size,
        "rule_lift": kw["rules"],
        "value_realization": {
            c.group: {k: v for k, v in c.__dict__.items() if k != "group"} for c in kw["correlations"]
        },
        "crosstabs": {
            "rows": kw["cross"],
            "association": {
                r["dimension"]: {k: v for k, v in r.items() if k != "dimension"}
                for r in kw["associations"].to_dict(orient="records")
            },
        },
        "clustering": clustering_m,
        "segment_tree": seg_m,
        "anomaly_models": models_m,
        "leakage": {name: m.leakage for name, m in models.models.items() if not m.skipped},
        "data_profile": _profile_metrics(kw["profile"]),
        "segment_definition": _segment_definition(kw["profile"]),
        "inference": _inference_metrics(kw["inference"]),
        "recommendations": [asdict(r) for r in kw["recs"]],
        "top_anomalies": kw["top"],
        "data_quality": {
            "reconciliation": dq.reconciliation,
            "issues_by_reason": dq.issues_by_reason,
            "total_issues": dq.total_issues,
            "rejected_rows": dq.rejected_rows,
            "conflicting_customers": kw["conflicts"],
            "check_warnings": list(kw["check_warnings"]),
            "data_docs_href": kw["data_docs_href"],
        },
        "write_back": {
            "anomaly_clusters_rows": len(kw["assignments"]),
            "anomaly_model_scores_rows": len(kw["scores"]),
        },
        "charts": [f"{name}.png" for name in kw["charts"]],
        "notes": kw["notes"],
        "config": config.to_dict(),
    }


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


def _mean_sd(entry: Mapping[str, float] | None) -> str:
    if not entry or not math.isfinite(entry.get("mean", math.nan)):
        return "n/a"
    return f"{entry['mean']:.3f} ± {entry['sd']:.3f}" if math.isfinite(entry.get("sd", math.nan)) else \
        f"{entry['mean']:.3f}"


def _profile_metrics(profile: DataProfile) -> dict[str, Any]:
    return {
        "records": profile.records,
        "constant_columns": list(profile.constant_columns),
        "all_null_columns": list(profile.all_null_columns),
        "identical_columns": [list(pair) for pair in profile.identical_columns],
        "removed_before_modelling": list(profile.redundant_columns),
    }


def band_statement(profile: DataProfile) -> str | None:
    if not profile.band_feature:
        return None
    edges = ", ".join(f"{b.segment} {b.min:.6g} to {b.max:.6g}" for b in profile.bands)
    return f"Segments are bands of {profile.band_feature}: {edges} (per-segment ranges do not overlap)."


def _segment_definition(profile: DataProfile) -> dict[str, Any]:
    return {
        "band_feature": profile.band_feature,
        "bands": [asdict(b) for b in profile.bands],
        "statement": band_statement(profile),
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


# ---------------------------------------------------------------------------------------------- text
def _threshold_text(fit: pd.DataFrame) -> str:
    if "anomaly_threshold" not in fit.columns or not len(fit):
        return "a retention deviation threshold"
    thr = pd.to_numeric(fit["anomaly_threshold"], errors="coerce").dropna().unique()
    modes = sorted(set(text_column(fit, "anomaly_threshold_mode").tolist()) - {"(missing)"})
    mode = "/".join(modes) if modes else "unknown"
    if len(thr) == 1:
        return f"|retention_probability - segment average| > {thr[0]:.4g} ({mode} threshold)"
    if len(thr) > 1:
        return (
            f"|retention_probability - segment average| above a per-segment threshold ({mode}; "
            f"{thr.min():.4g} to {thr.max():.4g})"
        )
    return "a retention deviation threshold"


def _blocks(**kw: Any) -> list[Block]:
    fit: pd.DataFrame = kw["fit"]
    config: ReportConfig = kw["config"]
    ov = kw["overview"]
    summary: pd.DataFrame = kw["summary"]
    significance: pd.DataFrame = kw["significance"]
    comparison: pd.DataFrame = kw["comparison"]
    clustering: ClusteringResult = kw["clustering"]
    seg_tree: SegmentTreeResult = kw["seg_tree"]
    models: AnomalyModelsResult = kw["models"]
    dq: DataQualitySummary = kw["dq"]
    figures = kw["figures"]
    b: list[Block] = []

    b.append(
        Para(
            "A record is a classification anomaly when its retention probability is far from its segment's average: "
            f"{_threshold_text(fit)}. Every number below comes from the dbt marts or from a model fitted in this "
            "report (seed "
            f"{config.random_state}); the anomaly label is defined by retention, so behaviour is compared against it, "
            "not assumed to cause it."
        )
    )
    b.append(Heading("Summary"))
    b.append(Bullets(tuple(_summary_items(kw))))

    # 1 sample
    b.append(Heading("1. Sample"))
    b.append(
        Bullets(
            (
                f"grain: {ov['grain']}",
                f"records: {_num(ov['records'])}",
                f"distinct customers: {_num(ov['distinct_customers'])}",
                f"classification anomalies: {_num(ov['anomaly_records'])} records ({_pct(ov['anomaly_rate'])} of "
                f"records) of {_num(ov['anomaly_customers'])} customers",
                "behaviour source: "
                + (", ".join(f"{k}: {_num(v)}" for k, v in sorted(ov["behaviour_source"].items())) or "n/a"),
            )
        )
    )
    b.append(
        _table(
            summary[["profitability_segment", "record_count", "distinct_customers"]],
            caption="Records per segment",
            headers={
                "profitability_segment": "segment",
                "record_count": "records",
                "distinct_customers": "customers",
            },
        )
    )

    # 2 segments
    b.append(Heading("2. Segments and anomalies"))
    b.append(
        _table(
            summary,
            formats={"avg_retention": lambda v: _num(v, 3), "anomaly_rate": _pct, "anomaly_share": _pct},
            caption="Retention and anomalies per segment",
            headers={
                "profitability_segment": "segment",
                "record_count": "records",
                "distinct_customers": "customers",
                "avg_retention": "avg retention",
                "anomaly_count": "anomalies",
                "above_count": "above avg",
                "below_count": "below avg",
                "anomaly_rate": "anomaly rate",
                "anomaly_share": "share of anomalies",
            },
        )
    )
    texts = []
    none = segments_without_anomalies(summary)
    if none:
        texts.append("Segments with no anomalies: " + ", ".join(f"'{s}'" for s in none) + ".")
    with_rate = summary.dropna(subset=["anomaly_rate"])
    if len(with_rate) and with_rate["anomaly_count"].sum() > 0:
        hi = with_rate.sort_values(["anomaly_rate", "profitability_segment"], ascending=[False, True]).iloc[0]
        texts.append(
            f"The highest anomaly rate is in '{hi['profitability_segment']}': {_pct(hi['anomaly_rate'])} "
            f"({_num(hi['anomaly_count'])} of {_num(hi['record_count'])} records; "
            f"{_num(hi['above_count'])} above and {_num(hi['below_count'])} below the segment average)."
        )
    if kw["rate_warning"]:
        texts.append("Warning: " + kw["rate_warning"])
    for t in texts:
        b.append(Para(t))
    if "anomaly_rate" in figures:
        b.append(Image("anomaly_rate", "Anomaly rate per segment"))
    cross: pd.DataFrame = kw["cross"]
    if len(cross):
        b.append(
            _table(
                cross,
                formats={"anomaly_rate": _pct},
                caption="Anomaly rate by dimension value (anomaly_crosstabs)",
            )
        )
    assoc: pd.DataFrame = kw["associations"]
    if len(assoc):
        b.append(
            _table(
                assoc,
                formats={
                    "chi2": lambda v: _num(v, 4),
                    "p_value": _p,
                    "cramers_v": lambda v: _num(v, 3),
                    "highest_rate": _pct,
                },
                caption="Chi-square test: does the anomaly rate depend on the dimension? "
                f"('association' = p < {config.alpha_large} and Cramer's V >= {config.cramers_v_large})",
            )
        )

    # 3 behaviour
    b.append(Heading("3. Behaviour of anomalies vs normal records"))
    tested = int(significance["n_anomaly_tested"].max()) if len(significance) else 0
    b.append(
        Para(
            "n, mean and median come from anomaly_feature_comparison. The test is a two-sided Mann-Whitney U "
            "computed from customer_segment_fit, on at most "
            f"{_num(config.stat_sample_size)} records per group (random sample, fixed seed; the largest group tested "
            f"here had {_num(tested)} anomaly records). Effect size is the rank-biserial correlation r (positive: "
            f"anomalies tend to be higher). Verdict: 'large' = p < {config.alpha_large} and |r| >= "
            f"{config.effect_large}; 'noise' = p >= {config.alpha_noise}; otherwise 'small'. These comparisons pool "
            "all segments and count records, not customers, so they partly measure the segment: they are "
            "descriptive. The verdicts rest on the within-segment, customer-weighted tests of section 7."
        )
    )
    table = comparison.merge(
        significance[["feature_name", "rank_biserial", "p_value", "verdict"]], on="feature_name", how="left"
    )
    b.append(
        _table(
            table,
            formats={"p_value": _p, "rank_biserial": lambda v: _num(v, 3)},
            caption="Feature comparison: anomaly vs normal",
            headers={
                "feature_name": "feature",
                "n_anomaly": "n anomaly",
                "mean_anomaly": "mean anomaly",
                "median_anomaly": "median anomaly",
                "n_normal": "n normal",
                "mean_normal": "mean normal",
                "median_normal": "median normal",
                "rank_biserial": "r",
                "p_value": "p",
            },
        )
    )
    by_verdict = {
        v: significance.loc[significance["verdict"] == v, "feature_name"].tolist()
        for v in ("large", "small", "noise", "insufficient data")
    }
    b.append(
        Bullets(
            tuple(
                f"{v}: " + (", ".join(by_verdict[v]) if by_verdict[v] else "none")
                for v in ("large", "small", "noise", "insufficient data")
                if by_verdict[v] or v != "insufficient data"
            )
        )
    )

    def family_text(family: str, feats: Sequence[str]) -> str:
        part = significance[significance["feature_name"].isin(feats)]
        if part.empty:
            return f"No {family} feature was available."
        large = part[part["verdict"] == "large"]
        if large.empty:
            return (
                f"No {family} feature differs strongly between anomalies and normal records "
                f"(verdicts: " + ", ".join(f"{r.feature_name} {r.verdict}" for r in part.itertuples()) + ")."
            )
        return (
            f"{family.capitalize()} features with a large difference: "
            + ", ".join(
                f"{r.feature_name} ({r.direction}, r={r.rank_biserial:+.2f})" for r in large.itertuples()
            )
            + "."
        )

    b.append(Heading("Transaction stability", 3))
    b.append(Para(family_text("transaction stability", STABILITY_FEATURES)))
    if "transaction_behaviour" in figures:
        b.append(
            Image("transaction_behaviour", "Lifetime transaction count vs monthly rate, anomalies in red")
        )
    if "volatility" in figures:
        b.append(Image("volatility", "Transaction value volatility: anomalies vs normal"))
    b.append(Heading("Seasonality", 3))
    b.append(Para(family_text("seasonality", SEASONALITY_FEATURES)))
    if "seasonal_distribution" in figures:
        b.append(
            Image(
                "seasonal_distribution", "Mean quarterly shares per segment and group (seasonal_distribution)"
            )
        )
    b.append(Heading("Value realization", 3))
    corr_frame = pd.DataFrame([c.__dict__ for c in kw["correlations"]])
    b.append(
        _table(
            corr_frame,
            formats={
                "pearson": lambda v: _num(v, 3),
                "spearman": lambda v: _num(v, 3),
                "pearson_p": _p,
                "spearman_p": _p,
            },
            caption="Correlation of comprehensive_customer_score with total_revenue "
            f"(at most {_num(config.stat_sample_size)} records per row)",
        )
    )
    overall = next(c for c in kw["correlations"] if c.group == "all")
    if math.isfinite(overall.spearman):
        strength = (
            "strong"
            if abs(overall.spearman) >= 0.7
            else "moderate"
            if abs(overall.spearman) >= 0.3
            else "weak"
        )
        b.append(
            Para(
                f"Across all records the score and revenue are {strength}ly rank-correlated (Spearman "
                f"rho {overall.spearman:.2f}, Pearson r {overall.pearson:.2f}). "
                + family_text("value", ("revenue_per_score", "value_mismatch_z"))
            )
        )
    else:
        b.append(Para("The correlation could not be computed (missing or constant score/revenue)."))
    if "value_realization" in figures:
        b.append(
            Image("value_realization", "comprehensive_customer_score vs total_revenue, anomalies in red")
        )
    rules: pd.DataFrame = kw["rules"]
    b.append(Heading("Threshold rules", 3))
    if len(rules):
        b.append(
            _table(
                rules,
                formats={"anomaly_hit_rate": _pct, "normal_hit_rate": _pct,
                         "hit_rate_difference_pp": lambda v: _num(v, 3)},
                caption="Threshold rules (anomaly_rule_lift): hit_rate_difference_pp = anomaly hit rate - normal "
                "hit rate, in percentage points; lift = P(anomaly | rule) / P(anomaly); pooled over segments",
            )
        )
    else:
        b.append(Para("anomaly_rule_lift is empty."))

    # 4 clustering
    b.append(Heading("4. Clusters of anomaly records"))
    if clustering.skipped:
        b.append(Para(clustering.note + ". No cluster chart is produced."))
    else:
        b.append(
            Para(
                f"KMeans on {_num(clustering.n_records)} anomaly records (fitted on {_num(clustering.n_fit)}; "
                f"n_init={config.n_init}, random_state={config.random_state}) using standardised features: "
                f"{', '.join(clustering.features)}. Missing values were imputed with the column median; all-null or "
                f"constant columns were dropped. K chosen by {clustering.k_selection}: K={clustering.chosen_k}. "
                "Labels name the features whose cluster median z-score differs from the other clusters' by at least "
                f"{config.label_min_z_gap} (plus a 'Qn-heavy' tag when one quarter dominates)."
            )
        )
        if clustering.feature_notes:
            b.append(Bullets(tuple(clustering.feature_notes)))
        b.append(
            _table(
                clustering.k_scores,
                formats={"silhouette": lambda v: _num(v, 3), "inertia": lambda v: _num(v, 5)},
                caption="Silhouette and inertia per K",
            )
        )
        if "silhouette" in figures:
            b.append(Image("silhouette", "Silhouette (choose max) and inertia (elbow) per K"))
        prof = clustering.profiles.copy()
        b.append(_table(prof, formats={"share": _pct}, caption="Cluster sizes and feature medians"))
        if "clusters" in figures:
            b.append(Image("clusters", "Anomaly clusters in a 2-D PCA projection, with centroids"))
        comp = clustering.composition
        for dim in ("profitability_segment", "lifecycle_stage", "seasonal_preference"):
            part = comp[comp["dimension"] == dim].drop(columns="dimension")
            if len(part):
                b.append(_table(part, formats={"share": _pct}, caption=f"Cluster composition by {dim}"))

    # 5 trees
    b.append(Heading("5. Decision trees"))
    b.append(Heading("5a. What defines the segment", 3))
    if seg_tree.skipped:
        b.append(Para(seg_tree.note + "."))
    else:
        b.append(
            Para(
                f"DecisionTreeClassifier (max_depth={config.max_depth}) predicting profitability_segment from behaviour "
                f"features, fitted on {_num(seg_tree.n_fit)} of {_num(seg_tree.n_records)} records. In-sample accuracy "
                f"{_pct(seg_tree.accuracy_in_sample)} on the fit rows; cross-validated accuracy "
                f"{_pct(seg_tree.accuracy_cv)} ({seg_tree.cv_note})."
            )
        )
        b.append(
            _table(
                seg_tree.per_class,
                formats={
                    c: _pct for c in ("precision_in_sample", "recall_in_sample", "precision_cv", "recall_cv")
                },
                caption="Per-segment precision and recall (in-sample and cross-validated)",
            )
        )
        b.append(
            _table(
                top_importances(seg_tree.importances, config.top_importances),
                formats={"importance": lambda v: _num(v, 3)},
                caption="Segment tree: top importances (zero importances omitted)",
            )
        )
        if seg_tree.threshold_statement:
            b.append(Para(seg_tree.threshold_statement))
        else:
            b.append(
                Para(
                    "No single feature carries "
                    f"{config.threshold_importance:.0%} of the importance: the segment combines several "
                    "behaviour features."
                )
            )
        b.append(
            _table(
                seg_tree.top_rules.head(8),
                formats={"purity": _pct},
                caption="Largest leaves of the segment tree (fit rows)",
            )
        )
        b.append(Code(seg_tree.rules_text, "Segment tree rules (sklearn export_text)"))

    b.append(Heading("5b. What predicts an anomaly", 3))
    if models.skipped:
        b.append(Para(models.note + ". No tree charts are produced."))
    else:
        b.append(
            Para(
                "Four trees (max_depth="
                f"{config.max_depth}, class_weight={config.class_weight}) predict is_classification_anomaly. In-sample "
                "metrics are on the fit rows; CV metrics are stratified k-fold out-of-fold predictions for every "
                "record (folds = min(cv_folds, anomaly count)). The 'full' model contains the retention columns that "
                "define the label: it is LEAKAGE, shown only to make the leak visible; the others leave every column "
                "derived from retention out by name. A model is flagged as leaky when one of its columns alone has "
                f"an out-of-fold ROC-AUC >= {config.leak_auc} or its CV ROC-AUC is >= {config.leak_auc}."
            )
        )
        mrows = []
        for name in MODEL_NAMES:
            m = models.models.get(name)
            if m is None:
                continue
            if m.skipped:
                mrows.append((name, m.note) + ("",) * 12)
                continue
            cv = m.cv or {}
            rep = m.cv_repeated.summary() if m.cv_repeated is not None else {}
            mrows.append(
                (
                    ("LEAKAGE: " if m.leakage_by_design else "") + name,
                    m.description,
                    _pct(m.in_sample.get("accuracy")),
                    _num(m.in_sample.get("roc_auc"), 3),
                    _pct(m.in_sample.get("recall_anomaly")),
                    _pct(cv.get("accuracy")),
                    _num(cv.get("roc_auc"), 3),
                    _pct(cv.get("recall_anomaly")),
                    str(m.cv_folds) if m.cv else "skipped",
                    _mean_sd(rep.get("roc_auc")),
                    _mean_sd(rep.get("pr_auc")),
                    _mean_sd(rep.get("balanced_accuracy")),
                    _mean_sd(rep.get("brier")),
                    "; ".join(m.leakage) if m.leakage else "none",
                )
            )
        b.append(
            Table(
                (
                    "model",
                    "features",
                    "in-sample accuracy",
                    "in-sample ROC-AUC",
                    "in-sample recall",
                    "CV accuracy",
                    "CV ROC-AUC",
                    "CV recall",
                    "CV folds",
                    "grouped CV ROC-AUC",
                    "grouped CV PR-AUC",
                    "grouped CV balanced accuracy",
                    "grouped CV Brier",
                    "leakage flags",
                ),
                tuple(mrows),
                caption="Anomaly models: in-sample, one stratified k-fold split (records), and repeated "
                "stratified k-fold over customers, grouped by customer_id (mean ± SD over repeats x folds)",
            )
        )
        b.extend(Para(t) for t in _model_texts(models))
        for name in MODEL_NAMES:
            m = models.models.get(name)
            if m is None or m.skipped:
                continue
            b.append(
                _table(
                    top_importances(m.importances, config.top_importances),
                    formats={"importance": lambda v: _num(v, 3)},
                    caption=f"{'LEAKAGE ' if m.leakage_by_design else ''}{name} model: top "
                    f"{config.top_importances} non-zero importances (one-hot columns summed per source column)",
                )
            )
        if "feature_importances" in figures:
            b.append(Image("feature_importances", "Feature importances per anomaly model"))
        fair = models.models.get("fair")
        if fair is not None and not fair.skipped:
            if "decision_tree" in figures:
                b.append(Image("decision_tree", "Fair anomaly tree (first levels)"))
            b.append(
                _table(
                    fair.top_rules.head(5),
                    formats={"anomaly_share": _pct, "anomaly_coverage": _pct},
                    caption="Fair tree: top rules predicting an anomaly (anomaly_share = precision in the "
                    "leaf, anomaly_coverage = share of all fit-row anomalies in the leaf)",
                )
            )
            b.append(Code(fair.rules_text, "Fair tree rules (sklearn export_text)"))
            b.append(Para(f"Write-back analysis.anomaly_model_scores: {models.scores_source}."))

    # 6 top anomalies
    b.append(Heading(f"6. Top {config.top_anomalies} anomalies"))
    top: pd.DataFrame = kw["top"]
    b.append(
        _table(
            top[
                [
                    "customer_record_id",
                    "customer_name",
                    "profitability_segment",
                    "retention_probability",
                    "segment_avg_retention",
                    "retention_deviation",
                ]
            ],
            formats={
                "retention_probability": lambda v: _num(v, 3),
                "segment_avg_retention": lambda v: _num(v, 3),
                "retention_deviation": lambda v: _num(v, 3),
                "customer_record_id": _str,
                "customer_name": _str,
                "profitability_segment": _str,
            },
            caption="Largest absolute retention deviations",
            headers={
                "profitability_segment": "segment",
                "retention_probability": "retention",
                "segment_avg_retention": "segment avg",
                "retention_deviation": "deviation",
            },
        )
    )

    # 7 within-segment inference
    b += _inference_blocks(kw["inference"], kw["profile"])

    # 8 recommendations
    b.append(Heading("8. Recommendations"))
    b.append(
        Para(
            "Each dimension gets one of four verdicts from the within-segment tests of section 7: supported, "
            "not supported, inconclusive or not testable. Clusters are descriptive and never change a verdict."
        )
    )
    items = []
    for r in kw["recs"]:
        links = []
        if r.clusters:
            links.append("clusters " + ", ".join(str(c) for c in r.clusters))
        charts = [f"charts/{f}.png" for f in r.figures if f in figures]
        if charts:
            links.append("figures " + ", ".join(charts))
        status = r.verdict.replace("_", " ").upper()
        items.append(f"{r.dimension} ({status}): {r.text}" + (f" See {'; '.join(links)}." if links else ""))
    b.append(Bullets(tuple(items)))
    statement = band_statement(kw["profile"]) or seg_tree.threshold_statement
    if statement:
        b.append(Para("Segment definition: " + statement))

    # 9 data quality
    b.append(Heading("9. Data quality"))
    if len(dq.reconciliation):
        b.append(_table(dq.reconciliation, caption="Input row reconciliation (input = clean + rejected)"))
    else:
        b.append(Para("input_row_reconciliation was not provided."))
    if len(dq.issues_by_reason):
        b.append(
            _table(
                dq.issues_by_reason, caption=f"Data quality issues by reason ({_num(dq.total_issues)} total)"
            )
        )
    else:
        b.append(Para("No data quality issues were recorded."))
    conflicts: pd.DataFrame = kw["conflicts"]
    if len(conflicts):
        b.append(
            _table(
                conflicts,
                formats={"min_retention": lambda v: _num(v, 3), "max_retention": lambda v: _num(v, 3)},
                caption=f"Customers with conflicting copies ({len(conflicts)}; their records are weighted so each "
                "customer counts once in the within-segment tests)",
            )
        )
    warnings_ = list(kw["check_warnings"])
    if warnings_:
        b.append(Para("Check warnings:"))
        b.append(Bullets(tuple(str(w) for w in warnings_)))
    else:
        b.append(Para("Check warnings: none."))
    if kw["data_docs_href"]:
        b.append(Link("Data docs (validation results)", str(kw["data_docs_href"])))

    # notes
    b.append(Heading("Method notes"))
    method = [
        f"Random seed {config.random_state} everywhere; plots show at most {_num(config.plot_sample_size)} points.",
        f"Decision trees are fitted on at most {_num(config.tree_rows)} records (stratified sample), KMeans on "
        f"at most {_num(config.cluster_rows)} anomaly records (then every anomaly record is assigned), each CV "
        f"fold model on at most {_num(config.cv_rows)} records; silhouette on at most "
        f"{_num(config.silhouette_sample_size)} points.",
        "Numeric features: missing values imputed with the column median; all-null or constant columns dropped. "
        "Categorical features: missing -> '(missing)', one-hot encoded.",
    ]
    if not seg_tree.skipped:
        method += [f"segment tree: {n}" for n in seg_tree.feature_notes]
    fair = models.models.get("fair") if not models.skipped else None
    if fair is not None:
        method += [f"fair model: {n}" for n in fair.feature_notes]
    method += list(kw["notes"])
    b.append(Bullets(tuple(method)))
    return b


def _summary_items(kw: Mapping[str, Any]) -> list[str]:
    """Executive summary: one sentence per finding, every number taken from the computed results."""
    ov = kw["overview"]
    summary: pd.DataFrame = kw["summary"]
    significance: pd.DataFrame = kw["significance"]
    clustering: ClusteringResult = kw["clustering"]
    seg_tree: SegmentTreeResult = kw["seg_tree"]
    models: AnomalyModelsResult = kw["models"]
    items = [
        f"{_num(ov['anomaly_records'])} of {_num(ov['records'])} records ({_pct(ov['anomaly_rate'])}) are "
        "classification anomalies."
    ]
    rated = summary.dropna(subset=["anomaly_rate"])
    if len(rated) >= 2:
        lo = rated.sort_values(["anomaly_rate", "profitability_segment"]).iloc[0]
        hi = rated.sort_values(["anomaly_rate", "profitability_segment"], ascending=[False, True]).iloc[0]
        items.append(
            f"The anomaly rate ranges from {_pct(lo['anomaly_rate'])} ('{lo['profitability_segment']}') to "
            f"{_pct(hi['anomaly_rate'])} ('{hi['profitability_segment']}')."
        )
    large = significance[significance["verdict"] == "large"]
    if len(large):
        items.append(
            "Pooled across segments (descriptive; it partly measures the segment), features that differ strongly "
            "between anomalies and normal records: "
            + ", ".join(f"{r.feature_name} ({r.direction})" for r in large.itertuples())
            + "."
        )
    elif len(significance):
        items.append(
            "Pooled across segments (descriptive), no behaviour feature differs strongly between anomalies and "
            "normal records."
        )
    band = band_statement(kw["profile"])
    if band:
        items.append(band)
    elif not seg_tree.skipped:
        items.append(
            seg_tree.threshold_statement
            or f"No single behaviour feature defines the segment (segment tree CV accuracy {_pct(seg_tree.accuracy_cv)})."
        )
    if not models.skipped:
        fair, base = models.models.get("fair"), models.models.get("baseline")
        if fair is not None and not fair.skipped and fair.cv:
            base_auc = base.cv["roc_auc"] if base is not None and not base.skipped and base.cv else math.nan
            if fair.cv_repeated is not None and base is not None and base.cv_repeated is not None:
                f_auc, b_auc = fair.cv_repeated.summary()["roc_auc"], base.cv_repeated.summary()["roc_auc"]
                diff = fair.vs_baseline or {}
                items.append(
                    f"Behaviour predicts anomalies with ROC-AUC {_mean_sd(f_auc)} (fair tree) vs {_mean_sd(b_auc)} "
                    f"from the segment alone (mean ± SD, {fair.cv_repeated.note}); paired difference "
                    f"{_num(diff.get('mean'), 2)} (2.5-97.5% of splits {_num(diff.get('p2_5'), 2)} to "
                    f"{_num(diff.get('p97_5'), 2)})."
                    + (" The fair tree is flagged as possibly leaky." if fair.leakage else "")
                )
            else:
                items.append(
                    f"Behaviour predicts anomalies with cross-validated ROC-AUC {_num(fair.cv['roc_auc'], 3)} (fair "
                    f"tree) vs {_num(base_auc, 3)} from the segment alone."
                    + (" The fair tree is flagged as possibly leaky." if fair.leakage else "")
                )
    else:
        items.append(models.note + ".")
    if not clustering.skipped:
        labels = "; ".join(
            f"{r.cluster_id}: {r.cluster_label} ({_pct(r.share)})" for r in clustering.profiles.itertuples()
        )
        items.append(f"Anomaly records form {clustering.chosen_k} clusters: {labels}.")
    else:
        items.append(clustering.note + ".")
    inference: inf.InferenceResult = kw["inference"]
    g = inference.primary
    items.append(
        f"The within-segment comparison rests on {_num(g.records_in_strata)} records of "
        f"{_num(g.customers_in_strata)} customers ({_num(g.anomaly_customers_in_strata)} anomaly customers) in "
        f"{len(g.strata)} segments holding both; minimum detectable Cliff's delta {_num(g.mde, 2)}."
    )
    items.append(summary_sentence(kw["recs"]))
    return items


def _inference_blocks(result: inf.InferenceResult, profile: DataProfile) -> list[Block]:
    """Section 7: sizes, verdict table under both grains, and the strongest tests of each dimension."""
    b: list[Block] = [Heading("7. Within-segment inference")]
    g = result.primary
    b.append(
        Para(
            "Question: within its segment, does a customer's behaviour explain why its retention does not fit? "
            "Anomalies are compared with normal records only inside segments that hold both ("
            + ", ".join(g.strata or ("none",))
            + "); a customer counts once (its records are weighted 1 / copies); numeric inputs are tested with "
            "van Elteren's stratified test, category levels and threshold rules with Cochran-Mantel-Haenszel; "
            "the effect is Cliff's delta (negligible < 0.147 <= small < 0.33 <= medium < 0.474 <= large) with a "
            "95% customer-bootstrap CI; q-values are Benjamini-Hochberg within each dimension. Each input is "
            "tested for all anomalies, and separately for those above and below the segment mean. 'supported' "
            "needs q < 0.05, a CI that excludes the negligible band, and the same result under both grains."
        )
    )
    sizes = [g] + ([result.other] if result.other is not None and result.other is not g else [])
    rows = pd.DataFrame(
        [
            {
                "grain": x.grain,
                "records": x.records,
                "customers": x.customers,
                "anomaly records": x.anomaly_records,
                "anomaly customers": x.anomaly_customers,
                "customers compared": x.customers_in_strata,
                "anomaly customers compared": x.anomaly_customers_in_strata,
                "min detectable delta": x.mde,
                "sampled": f"{_num(x.sample_size)} records (stratified)" if x.sampled else "no",
            }
            for x in sizes
        ]
    )
    b.append(_table(rows, formats={"min detectable delta": lambda v: _num(v, 2)}, caption="What the tests rest on"))
    b.append(Para("Other grain: " + result.other_note + "."))
    if profile.constant_columns or profile.identical_columns:
        b.append(
            Para(
                "Not testable (constant): " + (", ".join(profile.constant_columns) or "none") + ". Identical columns "
                "(the second is dropped): "
                + (", ".join(f"{a} = {c}" for a, c in profile.identical_columns) or "none")
                + "."
            )
        )
    verdict_rows = []
    for v in result.verdicts:
        for label, ev in ((g.grain, v.evidence), ("other grain", v.other_grain)):
            ev = ev or {}
            ci = ev.get("ci", [math.nan, math.nan])
            verdict_rows.append(
                {
                    "dimension": v.dimension,
                    "verdict": v.verdict if label == g.grain else "",
                    "grain": label if label == g.grain else (result.other.grain if result.other else "n/a"),
                    "input": ev.get("input", ""),
                    "contrast": ev.get("contrast", ""),
                    "delta": ev.get("delta", math.nan),
                    "CI": f"[{_num(ci[0], 2)}, {_num(ci[1], 2)}]",
                    "q": ev.get("q_value", math.nan),
                    "test": ev.get("test", ""),
                }
            )
    b.append(
        _table(
            pd.DataFrame(verdict_rows),
            formats={"delta": lambda v: _num(v, 2), "q": _p},
            caption="Verdicts with their evidence (best test of each dimension) under both grains",
        )
    )
    tests = [t for ts in g.tests.values() for t in ts if t.testable]
    top = sorted(tests, key=lambda t: (t.dimension, t.q_value, -abs(t.delta), t.input, t.contrast))
    per_dim: dict[str, int] = {}
    shown = []
    for t in top:
        per_dim[t.dimension] = per_dim.get(t.dimension, 0) + 1
        if per_dim[t.dimension] <= 5:
            shown.append(
                {
                    "dimension": t.dimension,
                    "input": t.input,
                    "contrast": t.contrast,
                    "delta": t.delta,
                    "magnitude": t.magnitude,
                    "p": t.p_value,
                    "q": t.q_value,
                    "customers (anomaly/normal)": f"{t.customers_anomaly}/{t.customers_normal}",
                }
            )
    if shown:
        b.append(
            _table(
                pd.DataFrame(shown),
                formats={"delta": lambda v: _num(v, 2), "p": _p, "q": _p},
                caption=f"Strongest within-segment tests per dimension ({g.grain} grain; all tests in metrics.json)",
            )
        )
    return b


def _model_texts(models: AnomalyModelsResult) -> list[str]:
    out = []
    full, fair, base, beh = (models.models.get(n) for n in MODEL_NAMES)

    def auc(m):
        return m.cv["roc_auc"] if m is not None and not m.skipped and m.cv else math.nan

    if full is not None and not full.skipped:
        out.append(
            f"The full model reaches CV ROC-AUC {_num(auc(full), 3)}"
            + (f" and is flagged: {'; '.join(full.leakage)}" if full.leakage else "")
            + ". This is expected: retention_probability and its deviation define the label."
        )
    if fair is not None and not fair.skipped:
        gain = auc(fair) - auc(base)
        txt = (
            f"The fair model (no retention-derived feature) reaches CV ROC-AUC {_num(auc(fair), 3)} vs "
            f"{_num(auc(base), 3)} for the segment-only baseline"
        )
        if math.isfinite(gain):
            verdict = (
                "behaviour adds predictive signal beyond the segment"
                if gain >= 0.05
                else "behaviour adds little beyond the segment"
            )
            txt += f" ({gain:+.3f}: {verdict})"
        if math.isfinite(auc(fair)) and auc(fair) < 0.6:
            txt += "; an AUC this close to 0.5 means anomalies are barely predictable from behaviour"
        out.append(txt + ".")
        if fair.leakage:
            out.append(
                "Warning: the fair model is flagged as possibly leaky ("
                + "; ".join(fair.leakage)
                + "). Check whether that feature is derived from retention before trusting it."
            )
    if beh is not None and not beh.skipped:
        out.append(f"The behavioural model (numeric behaviour only) reaches CV ROC-AUC {_num(auc(beh), 3)}.")
    return out


# ============================================================================================ writing
def _generated_at(value: str | None) -> str:
    if value is not None:
        return value
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None and epoch.strip().lstrip("-").isdigit():
        return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metrics_json(metrics: Mapping[str, Any], generated_at: str) -> str:
    payload = json_ready({**metrics, "generated_at": generated_at})
    return json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def write_report(report: Report, out_dir: Path, *, generated_at: str | None = None) -> dict[str, Path]:
    """Write report.md, report.html, metrics.json and charts/*.png; close the figures.

    ``generated_at`` (else $SOURCE_DATE_EPOCH, else now, UTC) is the only run-dependent value and appears
    only in metrics.json. Stale chart files from an earlier run (known chart names) are removed.
    """
    out_dir = Path(out_dir)
    charts = out_dir / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in CHART_NAMES:
        path = charts / f"{name}.png"
        if name not in report.chart_png and name not in report.figures and path.exists():
            path.unlink()
    for name, fig in report.figures.items():
        data = report.chart_png.get(name)
        if data is None:
            data = plots.figure_png(fig, int(report.metrics.get("config", {}).get("dpi", 100)))
        path = charts / f"{name}.png"
        path.write_bytes(data)
        paths[f"charts/{name}.png"] = path
        plots.close(fig)
    for filename, text in (
        ("report.md", report.markdown),
        ("report.html", report.html),
        ("metrics.json", metrics_json(report.metrics, _generated_at(generated_at))),
    ):
        path = out_dir / filename
        path.write_text(text, encoding="utf-8", newline="\n")
        paths[filename] = path
    return paths
