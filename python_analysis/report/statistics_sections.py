"""Blocks for issue 9's results (see /work/notes/report-needs-9.md): the anomaly definition's robustness, the
testability of each input, and the grouped assessment of the fair model. Each function returns blocks for a
section in ``sections``; sentences come from ``verdicts`` (the statistics' own wording) or ``text``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..verdicts import anomaly_definition_sentences
from . import formats
from .context import ReportContext
from .document import Block, Bullets, Para, Subheading, table


def anomaly_definition(ctx: ReportContext) -> list[Block]:
    """Per segment: spread of retention, whether two populations fit better, share flagged; per definition:
    how many records it flags and how far they overlap the build's flags (Jaccard)."""
    sensitivity: Mapping[str, Any] = ctx.inference.primary.anomaly_definition or {}
    if not sensitivity:
        return []
    blocks: list[Block] = [Subheading("How robust the anomaly definition is", "anomaly-definition")]
    sentences = anomaly_definition_sentences(sensitivity)
    if sentences:
        blocks.append(Bullets(tuple(sentences)))
    segments = pd.DataFrame(sensitivity.get("segments", []))
    if len(segments):
        from .tables import in_segment_order

        segments = in_segment_order(segments.rename(columns={"segment": "profitability_segment"}), ctx.segment_order)
        columns = [c for c in ("profitability_segment", "records", "anomalies", "share_flagged", "retention_sd",
                               "retention_iqr", "bic_1", "bic_2", "bimodal", "two_retention_populations")
                   if c in segments.columns]
        blocks.append(table(segments[columns], "Retention spread per segment (records; mixture fitted on at most "
                            "1,000 records per segment)",
                            formats_by_column={c: formats.num for c in ("retention_sd", "retention_iqr", "bic_1",
                                                                         "bic_2")} | {"share_flagged": formats.pct},
                            labels={"anomalies": "Anomaly records", "share_flagged": "Share flagged",
                                    "retention_sd": "Retention SD", "retention_iqr": "Retention IQR",
                                    "bic_1": "BIC, one population", "bic_2": "BIC, two populations",
                                    "bimodal": "Two fit better", "two_retention_populations": "Two populations"}))
    definitions = pd.DataFrame(sensitivity.get("definitions", []))
    if len(definitions):
        blocks.append(table(definitions, "Other anomaly definitions: records flagged and overlap with this build's "
                            "flags (Jaccard)", formats_by_column={"cut": formats.num, "jaccard": formats.num},
                            labels={"cut": "Cut", "jaccard": "Jaccard", "anomalies": "Anomaly records"}))
    return blocks


def untestable_inputs(ctx: ReportContext) -> list[Block]:
    """The inputs of each dimension that could not be tested, with the reason."""
    from ..inference import input_status

    rows = [r for r in input_status(ctx.inference.primary) if r["status"] != "testable"]
    if not rows:
        return [Para("Every input of every dimension could be tested.")]
    return [table(pd.DataFrame(rows)[["dimension", "input", "note"]],
                  f"Inputs that could not be tested ({formats.count(len(rows))})",
                  labels={"input": "Input", "note": "Why"})]


def grouped_assessment(ctx: ReportContext) -> list[Block]:
    """The fair tree against the baseline, an L2 logistic model, a nested-CV tree and a calibrated tree, on
    folds grouped by customer; the difference to the baseline with its bootstrap CI; within-segment ROC-AUC;
    held-out permutation importance."""
    fair = ctx.models.anomaly.models.get("fair") if not ctx.models.anomaly.skipped else None
    result: Mapping[str, Any] | None = getattr(fair, "assessment", None) if fair is not None else None
    if not result:
        return []
    blocks: list[Block] = [Subheading("Grouped assessment of the fair tree", "grouped-assessment"),
                           Para(f"{result.get('note', '')}; {formats.count(result.get('customers'))} customers, "
                                f"{formats.count(result.get('anomalies'))} anomaly records.")]
    diffs = result.get("roc_auc_minus_baseline", {})
    rows = []
    for name, m in result.get("models", {}).items():
        d = diffs.get(name) or {}
        ci = f" [{formats.signed(d.get('ci_low'), 3)}, {formats.signed(d.get('ci_high'), 3)}]" if d else ""
        rows.append({"model": name, "roc_auc": m.get("roc_auc"), "pr_auc": m.get("pr_auc"),
                     "balanced_accuracy": m.get("balanced_accuracy"), "brier": m.get("brier"),
                     "minus_baseline": (formats.signed(d.get("difference"), 3) + ci) if d else ""})
    blocks.append(table(pd.DataFrame(rows), "Out-of-fold scores (grouped by customer); ROC-AUC minus the baseline's "
                        "with its 95% customer-bootstrap CI", formats_by_column={c: formats.num for c in (
                            "roc_auc", "pr_auc", "balanced_accuracy", "brier")},
                        labels={"model": "Model", "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC",
                                "balanced_accuracy": "Balanced accuracy", "brier": "Brier",
                                "minus_baseline": "ROC-AUC minus baseline [95% CI]"}))
    nested = result.get("nested_cv") or {}
    if nested.get("chosen"):
        chosen = ", ".join(f"depth {d} in {n} folds" for d, n in nested["chosen"].items())
        blocks.append(Para(f"max_depth tuned by nested CV (grid {nested.get('grid')}): {chosen}; ROC-AUC "
                           f"{formats.num(nested.get('roc_auc'))}."))
    within = (result.get("within_segment") or {}).get("fair") or {}
    if within.get("by_segment"):
        blocks.append(table(pd.DataFrame(within["by_segment"]), "Fair tree ROC-AUC within each segment (the "
                            "segment-only baseline is 0.5 there by construction); weighted mean "
                            f"{formats.num(within.get('weighted_mean'))}", formats_by_column={"roc_auc": formats.num},
                            labels={"anomalies": "Anomaly records", "roc_auc": "ROC-AUC"}))
    importance = pd.DataFrame(result.get("permutation_importance", [])).head(10)
    if len(importance):
        blocks.append(table(importance, "Held-out permutation importance of the fair tree (ROC-AUC drop; correlated "
                            "features permuted together)", formats_by_column={
                                "auc_drop_mean": formats.num, "auc_drop_sd": formats.num},
                            labels={"features": "Features", "auc_drop_mean": "ROC-AUC drop",
                                    "auc_drop_sd": "SD over folds", "folds": "Folds"}))
    return blocks


def difference_to_baseline(ctx: ReportContext) -> dict[str, float] | None:
    """The fair tree's ROC-AUC minus the baseline's, with its CI, when the grouped assessment ran."""
    fair = ctx.models.anomaly.models.get("fair") if not ctx.models.anomaly.skipped else None
    result = getattr(fair, "assessment", None) if fair is not None else None
    d = (result or {}).get("roc_auc_minus_baseline", {}).get("fair")
    if not d or not math.isfinite(d.get("difference", math.nan)):
        return None
    return d
