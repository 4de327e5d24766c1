"""Recommendations generated from the four-state verdicts of ``inference`` (never from fixed strings).

Clusters are descriptive: they may be named beside a recommendation but never change its verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .inference import MEDIUM, NEGLIGIBLE, InferenceResult, Resegmentation, Verdict

ACTIONS: dict[str, str] = {
    "transaction stability": "Add a transaction-stability dimension (value volatility, consistency of the monthly "
    "rate with the lifetime count, quarterly coverage).",
    "seasonal preference": "Add a seasonal-preference dimension (quarterly share profile, e.g. Q4-focused vs "
    "year-round).",
    "lifecycle stage": "Add lifecycle stage as a segmentation dimension.",
    "value realization": "Recalibrate comprehensive_customer_score against realised revenue (value realization "
    "path).",
}
FIGURES: dict[str, tuple[str, ...]] = {
    "transaction stability": ("transaction_behaviour", "volatility", "clusters"),
    "seasonal preference": ("seasonal_distribution", "clusters"),
    "lifecycle stage": (),
    "value realization": ("value_realization",),
}
CLUSTER_FAMILY: dict[str, str] = {
    "transaction stability": "transaction stability",
    "seasonal preference": "seasonal preference",
}


@dataclass(frozen=True)
class Recommendation:
    dimension: str
    verdict: str  # supported | not_supported | inconclusive | not_testable
    reason: str
    supported: bool
    evidence: dict[str, Any]
    other_grain_evidence: dict[str, Any] | None
    mde: float
    untestable_inputs: tuple[str, ...]
    clusters: tuple[int, ...]  # descriptive only
    figures: tuple[str, ...]
    text: str
    resegmentation: Resegmentation | None = None


def _f(value: Any, digits: int = 2) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if not math.isfinite(v) else f"{v:+.{digits}f}"


def _q(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a"
    if not math.isfinite(v):
        return "n/a"
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def _qtext(value: Any) -> str:
    q = _q(value)
    return q if q.startswith("<") else "= " + q


def describe_evidence(ev: Mapping[str, Any]) -> str:
    """'<input> (<contrast>): Cliff's delta +0.52 (large), 95% CI [+0.44, +0.60], q < 0.001, <test>'."""
    if not ev:
        return "no test"
    lo, hi = ev.get("ci", [math.nan, math.nan])
    ci = f"95% CI [{_f(lo)}, {_f(hi)}]" if math.isfinite(float(lo if lo is not None else math.nan)) else "no CI"
    customers = ev.get("customers", [0, 0])
    return (
        f"{ev['input']} ({ev['contrast']}): Cliff's delta {_f(ev['delta'])} ({ev['magnitude']}), {ci}, "
        f"q {_qtext(ev['q_value'])}, "
        f"{ev['test']}, {customers[0]} vs {customers[1]} customers"
    )


def verdict_text(v: Verdict, other_note: str) -> str:
    ev = describe_evidence(v.evidence)
    other = describe_evidence(v.other_grain) if v.other_grain else "not available"
    mde = _f(abs(v.mde)).lstrip("+") if math.isfinite(v.mde) else "n/a"
    if v.verdict == "supported":
        return (f"{ACTIONS[v.dimension]} Within segments, {ev}; it holds under the other grain too ({other}).")
    if v.verdict == "not_testable":
        inputs = ", ".join(v.untestable_inputs) or "none"
        return (f"Not testable: every input of this dimension is constant, missing, or never varies inside a segment "
                f"holding both anomalies and normal records ({inputs}).")
    if v.verdict == "not_supported":
        return (f"Not supported: within segments no input separates anomalies from normal records beyond a small "
                f"effect (best: {ev}); effects of |delta| >= {MEDIUM} are excluded (minimum detectable delta {mde}).")
    reasons = {
        "other_grain_not_available": f"it passes under this grain ({ev}) but could not be checked under the other "
        f"grain: {other_note}.",
        "fails_under_other_grain": f"it passes under this grain ({ev}) but not under the other grain ({other}).",
        "significant_but_ci_includes_negligible": f"a within-segment difference is significant ({ev}) but its CI "
        f"reaches into the negligible band (|delta| < {NEGLIGIBLE}).",
        "ci_admits_medium_effect": f"no input passes, but the best test's CI still admits a medium effect ({ev}; "
        f"minimum detectable delta {mde}).",
        "underpowered": f"no input passes, and the comparison is too small to rule out a medium effect (minimum "
        f"detectable delta {mde}; best: {ev}).",
    }
    return "Inconclusive: " + reasons.get(v.reason, ev)


def resegmentation_text(r: Resegmentation) -> str:
    return (
        f"Re-segmentation simulation (each segment split by {r.input}): retention R² {r.r2_before:.3f} -> "
        f"{r.r2_after:.3f} (gain {r.r2_gain:+.3f}; {r.permutations} within-segment permutations of the input give "
        f"{r.null_r2_gain_mean:+.3f} on average, p = {r.p_value:.3f}); anomalies {r.anomalies_before} -> "
        f"{r.anomalies_after} ({r.anomaly_change:+d}; null {r.null_anomaly_change_mean:+.1f}). It counts records "
        "(not customer-weighted) and is shown beside the verdict, not in it."
    )


def recommendations(
    result: InferenceResult, clustering: Any, resegmentation: Mapping[str, Resegmentation | None] | None = None
) -> list[Recommendation]:
    """One recommendation per dimension, from its verdict; cluster differences are named, never counted; the
    re-segmentation simulation is reported beside the verdict and does not change it."""
    out = []
    resegmentation = resegmentation or {}
    for v in result.verdicts:
        ids, within = _cluster_hits(clustering, CLUSTER_FAMILY.get(v.dimension))
        text = verdict_text(v, result.other_note)
        reseg = resegmentation.get(v.dimension)
        if reseg is not None:
            text += " " + resegmentation_text(reseg)
        if within:
            text += (" Descriptive only: the anomaly clusters differ along it (" + "; ".join(within) + "), which "
                     "does not show that it separates anomalies from normal records.")
        out.append(
            Recommendation(
                dimension=v.dimension,
                verdict=v.verdict,
                reason=v.reason,
                supported=v.verdict == "supported",
                evidence=v.evidence,
                other_grain_evidence=v.other_grain,
                mde=v.mde,
                untestable_inputs=v.untestable_inputs,
                clusters=tuple(ids),
                figures=FIGURES[v.dimension],
                text=text,
                resegmentation=reseg,
            )
        )
    return out


def _cluster_hits(clustering: Any, family: str | None) -> tuple[list[int], list[str]]:
    if family is None or clustering is None or clustering.skipped:
        return [], []
    labels = dict(zip(clustering.profiles["cluster_id"], clustering.profiles["cluster_label"], strict=True))
    ids, text = [], []
    for c, terms in sorted(clustering.terms.items()):
        fam = [t for t in terms if t["family"] == family]
        if fam:
            ids.append(int(c))
            text.append(f"cluster {c} ('{labels[c]}'): " + ", ".join(f"{t['direction']} {t['feature']}" for t in fam))
    return ids, text


def summary_sentence(recs: Sequence[Recommendation]) -> str:
    parts = [f"{r.dimension}: {r.verdict.replace('_', ' ')}" for r in recs]
    return ("Within-segment verdicts (customer-weighted, Benjamini-Hochberg q, both grains): " + "; ".join(parts)
            + ".")


def anomaly_definition_sentences(sensitivity: Mapping[str, Any]) -> list[str]:
    """Sentences about the anomaly definition, from ``inference.anomaly_definition_sensitivity``."""
    out = []
    for row in sensitivity.get("segments", []):
        if row.get("two_retention_populations"):
            out.append(
                f"{row['anomalies']} of {row['records']} records of {row['segment']} are flagged: the segment holds "
                f"two retention populations (retention SD {row['retention_sd']:.2f}, IQR {row['retention_iqr']:.2f}"
                + ("; a two-component mixture fits better by BIC" if row.get("bimodal") else "")
                + "), so its average describes neither."
            )
    sweep = [d for d in sensitivity.get("definitions", []) if d["kind"] == "absolute"]
    if sweep:
        low = min(sweep, key=lambda d: d["cut"])
        high = max(sweep, key=lambda d: d["cut"])
        out.append(
            f"Between thresholds {low['cut']:.2f} and {high['cut']:.2f} the flagged set has {high['anomalies']} to "
            f"{low['anomalies']} records; Jaccard overlap with the build's flags "
            f"{min(d['jaccard'] for d in sweep):.2f} to {max(d['jaccard'] for d in sweep):.2f}."
        )
    relative = [d for d in sensitivity.get("definitions", []) if d["kind"] != "absolute"]
    if relative:
        out.append("Segment-relative definitions: " + "; ".join(
            f"{d['definition']}: {d['anomalies']} records, Jaccard {d['jaccard']:.2f}" for d in relative) + ".")
    return out
