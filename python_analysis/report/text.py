"""Every sentence the report writes, in one place. Each takes numbers and returns text with the supporting
number beside the claim; the sections only arrange these sentences. (The per-dimension verdict explanations
come from ``verdicts.verdict_text``, next to the decision rules that produce them.)"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..profile import DataProfile
from ..verdicts import Recommendation
from .formats import count, num, p_clause, pct, signed

VERDICT_WORDS = {
    "supported": "supported",
    "not_supported": "not supported",
    "inconclusive": "inconclusive",
    "not_testable": "not testable",
}


def definition(threshold: float | None, mode: str | None) -> str:
    unit = {"relative": " of that mean", "zscore": " segment standard deviations (sample SD of the segment's "
            "retention)"}.get(mode or "", "")
    rule = (f"its retention probability differs from its segment's mean retention by more than {num(threshold)}"
            f"{unit}") if threshold is not None else "its retention probability is far from its segment's mean retention"
    return (f"A customer record is a classification anomaly when {rule}. Anomalies are counted as customers and "
            "as records (a customer can have several records: subsidiaries and snapshots).")


def found(ov: Mapping[str, Any]) -> str:
    customers, records = ov.get("distinct_customers"), ov.get("records")
    a_cust, a_rec = ov.get("anomaly_customers"), ov.get("anomaly_records")
    cust_rate = (a_cust / customers) if a_cust is not None and customers else None
    return (f"{count(a_cust)} of {count(customers)} customers ({pct(cust_rate)}) do not fit their segment: "
            f"{count(a_rec)} of {count(records)} records ({pct(ov.get('anomaly_rate'))}) are classification anomalies.")


def where(per_segment: pd.DataFrame, top: int = 3) -> str | None:
    """``per_segment``: segment, anomaly_customers, anomaly_count, anomaly_rate (in value order)."""
    rows = per_segment[per_segment["anomaly_count"] > 0]
    if not len(rows):
        return None
    rows = rows.sort_values(["anomaly_customers", "anomaly_rate", "profitability_segment"],
                            ascending=[False, False, True], kind="mergesort").head(top)
    parts = [f"{r.profitability_segment} ({count(r.anomaly_customers)} customers, {pct(r.anomaly_rate)} of its "
             f"records)" for r in rows.itertuples()]
    return "Most anomaly customers are in " + _join(parts) + "."


def segment_definition(profile: DataProfile) -> str | None:
    """'Segments are bands of total_revenue: Basic 10 to 749, ...' when one feature separates them."""
    if not profile.band_feature:
        return None
    edges = ", ".join(f"{b.segment} {num(b.min)} to {num(b.max)}" for b in profile.bands)
    return f"Segments are bands of {profile.band_feature}: {edges} (the ranges do not overlap)."


def no_segment_definition(accuracy_cv: float | None) -> str:
    return ("No single feature separates the segments" + (f"; a decision tree on behaviour assigns {pct(accuracy_cv)} "
                                                          "of records to their segment (cross-validated)"
                                                          if accuracy_cv is not None else "") + ".")


def evidence_clause(ev: Mapping[str, Any] | None) -> str:
    if not ev:
        return "no test"
    lo, hi = (ev.get("ci") or [math.nan, math.nan])[:2]
    return (f"{ev.get('input')}, {ev.get('contrast')}: Cliff's δ {signed(ev.get('delta'))}, 95% CI "
            f"[{signed(lo)}, {signed(hi)}], q {p_clause(ev.get('q_value'))}")


def how_sure(anomaly_customers: int, mde: float, strata: int) -> str:
    return (f"The within-segment tests compare {count(anomaly_customers)} anomaly customers with normal customers of "
            f"the same segment ({count(strata)} segments); they can detect an effect of Cliff's δ ≥ {num(mde, 2)} "
            "(80% power).")


def verdict_sentence(r: Recommendation) -> str:
    word = VERDICT_WORDS.get(r.verdict, r.verdict)
    return f"{r.dimension.capitalize()}: {word} ({evidence_clause(r.evidence)})."


def model_sentence(fair_auc: float | None, base_auc: float | None,
                   difference: Mapping[str, float] | None = None) -> str | None:
    """Behaviour vs the segment alone; with the grouped assessment's paired difference and its CI when given."""
    if fair_auc is None or not math.isfinite(fair_auc):
        return None
    if difference is not None:
        lo, hi = difference.get("ci_low", math.nan), difference.get("ci_high", math.nan)
        verdict = ("better than" if lo > 0 else "worse than" if hi < 0 else "not distinguishable from")
        return (f"A decision tree on behaviour predicts who is an anomaly {verdict} the segment alone: grouped "
                f"cross-validated ROC-AUC difference {signed(difference.get('difference'), 3)} (95% CI "
                f"[{signed(lo, 3)}, {signed(hi, 3)}]; details in Appendix A).")
    if base_auc is None or not math.isfinite(base_auc):
        base = ""
    elif base_auc >= fair_auc:
        base = f", no better than {num(base_auc)} from the segment alone"
    else:
        base = f" against {num(base_auc)} from the segment alone"
    return (f"A decision tree on behaviour predicts who is an anomaly with cross-validated ROC-AUC {num(fair_auc)}"
            f"{base} (details in Appendix A).")


def action_segments(per_segment: pd.DataFrame, top: int = 2) -> str | None:
    rows = per_segment[per_segment["anomaly_count"] > 0].sort_values(
        ["anomaly_rate", "profitability_segment"], ascending=[False, True], kind="mergesort").head(top)
    if not len(rows):
        return None
    parts = [f"{r.profitability_segment} ({pct(r.anomaly_rate)} of records are anomalies)" for r in rows.itertuples()]
    return "Review the segment rules of " + _join(parts) + " first: they have the highest anomaly rates."


def action_customers(top: pd.DataFrame, total_customers: int, total_records: int) -> str | None:
    if not len(top):
        return None
    ids = ", ".join(f"{r.customer_id} ({signed(r.retention_deviation)})" for r in top.itertuples())
    return (f"Look first at customers {ids}: their retention deviates most from their segment's mean. All "
            f"{count(total_customers)} customers ({count(total_records)} records) are in anomalies.csv.")


def action_conflicts(conflicts: pd.DataFrame) -> str | None:
    if not len(conflicts):
        return None
    flagged = int((conflicts["anomaly_records"] > 0).sum())
    return (f"Resolve the {count(len(conflicts))} customers whose copies disagree on segment or retention "
            f"({count(flagged)} of them have an anomaly record) before acting on them.")


def action_dimension(r: Recommendation) -> str:
    ev = evidence_clause(r.evidence)
    name = r.dimension
    if r.verdict == "supported":
        return f"Add {name} as a segmentation dimension: it separates anomalies within segments ({ev})."
    if r.verdict == "not_supported":
        return f"Do not add {name}: within segments it does not separate anomalies beyond a small effect ({ev})."
    if r.verdict == "not_testable":
        return f"{name.capitalize()} cannot be tested with these inputs (constant or missing inside the segments)."
    return (f"Do not decide on {name} yet: the evidence is inconclusive ({ev}; minimum detectable δ "
            f"{num(abs(r.mde), 2)}). See section 4.")


def action_changes(changes: pd.DataFrame | None) -> str | None:
    if changes is None:
        return None
    if not len(changes):
        return "Nothing changed since the last build (or this is the first build)."
    kinds = changes["change_type"].astype(str).value_counts()
    became = int(kinds.get("became_anomaly", 0) + kinds.get("new_anomaly", 0))
    stopped = int(kinds.get("stopped_being_anomaly", 0) + kinds.get("gone_anomaly", 0))
    return (f"Since the last build {count(became)} customers became anomalies and {count(stopped)} stopped being "
            "anomalies (section 7).")


def action_quality(rejected: int, warnings: int) -> str | None:
    if not rejected and not warnings:
        return None
    return (f"{count(rejected)} input rows were rejected and {count(warnings)} warnings recorded; they are listed "
            "by reason in section 8.")


def rate_range(per_segment: pd.DataFrame) -> str | None:
    rated = per_segment.dropna(subset=["anomaly_rate"])
    if len(rated) < 2:
        return None
    lo = rated.sort_values(["anomaly_rate", "profitability_segment"], kind="mergesort").iloc[0]
    hi = rated.sort_values(["anomaly_rate", "profitability_segment"], ascending=[False, True], kind="mergesort").iloc[0]
    return (f"The anomaly rate ranges from {pct(lo['anomaly_rate'])} ({lo['profitability_segment']}) to "
            f"{pct(hi['anomaly_rate'])} ({hi['profitability_segment']}).")


def family(name: str, significance: pd.DataFrame, features: Sequence[str]) -> str:
    part = significance[significance["feature_name"].isin(features)]
    if part.empty:
        return f"No {name} feature was available."
    large = part[part["verdict"] == "large"]
    if large.empty:
        return (f"No {name} feature differs strongly between anomalies and normal records (pooled over segments: "
                + ", ".join(f"{r.feature_name} {r.verdict}" for r in part.itertuples()) + ").")
    return (f"Pooled over segments, {name} features with a large difference: "
            + ", ".join(f"{r.feature_name} ({r.direction}, r {signed(r.rank_biserial)})" for r in large.itertuples())
            + ".")


def correlation(spearman: float, pearson: float) -> str:
    if not math.isfinite(spearman):
        return "The correlation could not be computed (missing or constant score or revenue)."
    strength = "strong" if abs(spearman) >= 0.7 else "moderate" if abs(spearman) >= 0.3 else "weak"
    return (f"Across all records the score and revenue are {strength}ly rank-correlated (Spearman ρ "
            f"{signed(spearman)}, Pearson r {signed(pearson)}).")


def _join(parts: Sequence[str]) -> str:
    parts = list(parts)
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def segment_tree_statement(feature: str | None, share: float | None, accuracy_cv: float | None,
                           first_split: tuple[str, float] | None) -> str | None:
    """When one feature carries most of the segment tree's importance: the segment is close to a threshold on it."""
    if not feature or share is None:
        return None
    split = ""
    if first_split is not None and first_split[0] == feature:
        split = f" The first split is {feature} ≤ {num(first_split[1])}."
    accuracy = f" (cross-validated accuracy {pct(accuracy_cv)})" if accuracy_cv is not None else ""
    return (f"The segment is close to a threshold on {feature}: that one feature carries {pct(share, 0)} of the "
            f"segment tree's importance{accuracy}.{split}")


def rate_warning(records: int, anomalies: int, band: tuple[float, float]) -> str | None:
    """A warning when the overall anomaly rate is outside the plausible band."""
    if not records:
        return "No records in the segment summary."
    rate, (lo, hi) = anomalies / records, band
    if rate < lo:
        return (f"The overall anomaly rate {pct(rate)} is below {pct(lo, 0)}: the threshold may be too loose to find "
                "enough anomalies for stable statistics.")
    if rate > hi:
        return (f"The overall anomaly rate {pct(rate)} is above {pct(hi, 0)}: the threshold may be too tight; a large "
                "share of records 'does not fit', which says more about the threshold than about the segments.")
    return None


def reliability(curve: Any) -> str:
    """How far the written-back probability is from calibrated: the largest and the mean gap between the
    observed anomaly share and the mean prediction over the bins of the reliability curve."""
    gaps = [abs(o - p) for o, p in zip(curve.observed_rate, curve.mean_predicted, strict=True)]
    return (f"Reliability of the written-back anomaly probability over {count(len(gaps))} bins of predicted "
            f"probability ({count(sum(curve.records_per_bin))} records, out-of-fold): the observed anomaly share "
            f"differs from the mean prediction by {100 * sum(gaps) / len(gaps):.1f} percentage points on average and "
            f"at most {100 * max(gaps):.1f}; Brier score {num(curve.brier)}.")


# ARI bands for "the clusters restate the segment": >= 0.5 mostly, < 0.2 hardly (Hubert & Arabie's ARI is 0
# for chance agreement and 1 for identical partitions)
ARI_MOSTLY, ARI_HARDLY = 0.5, 0.2
STABLE_K_SHARE = 0.5  # a K chosen in at least half of the bootstrap resamples is called stable


def cluster_stability(k_scores: pd.DataFrame, chosen_k: int | None, composition: pd.DataFrame) -> str | None:
    """K's bootstrap stability (share of resamples that pick it, agreement with the full-data partition) and
    how far the partition restates the segment (ARI against the segment; when high, each cluster's main
    segment from ``composition``)."""
    if chosen_k is None or "bootstrap_k_share" not in k_scores.columns or not len(k_scores):
        return None
    row = k_scores.loc[k_scores["k"] == chosen_k]
    if not len(row):
        return None
    row = row.iloc[0]
    share, ari, vs_segment = (float(row.get(c, math.nan)) for c in ("bootstrap_k_share", "bootstrap_ari",
                                                                    "ari_vs_segment"))
    top = k_scores.sort_values(["bootstrap_k_share", "k"], ascending=[False, True], kind="mergesort").iloc[0]
    records = int(row["stability_records"]) if "stability_records" in k_scores.columns else None
    on = f" of {count(records)} anomaly records" if records else ""
    parts = [f"K = {chosen_k} wins in {pct(share, 0)} of the bootstrap resamples{on}"]
    if share >= STABLE_K_SHARE:
        parts[0] += ", so K is stable"
    elif int(top["k"]) != chosen_k:
        parts[0] += (f" (K = {int(top['k'])} wins most often, in {pct(float(top['bootstrap_k_share']), 0)}), so no K "
                     "is stable")
    else:
        parts[0] += ", less than half of them, so K is not stable"
    if math.isfinite(ari):
        parts.append(f"a resample's partition agrees with the full-data one at mean ARI {num(ari, 2)}")
    sentence = "Cluster stability: " + "; ".join(parts) + "."
    if not math.isfinite(vs_segment):
        return sentence
    if vs_segment >= ARI_MOSTLY:
        return sentence + (f" The partition mostly rediscovers the segments (ARI {num(vs_segment, 2)} against the "
                           f"segment){_main_segments(composition)}: the clusters largely restate the segment.")
    if vs_segment < ARI_HARDLY:
        return sentence + (f" The partition is nearly independent of the segment (ARI {num(vs_segment, 2)}): the "
                           "clusters cut across segments.")
    return sentence + f" The partition partly follows the segment (ARI {num(vs_segment, 2)} against the segment)."


def _main_segments(composition: pd.DataFrame) -> str:
    """'; cluster 0 is mostly High Value (92%), cluster 1 mostly Basic (88%)' from the composition table."""
    if not len(composition) or "dimension" not in composition.columns:
        return ""
    seg = composition[composition["dimension"] == "profitability_segment"]
    main = seg.sort_values(["cluster_id", "share", "value"], ascending=[True, False, True], kind="mergesort") \
        .drop_duplicates("cluster_id")
    items = [f"cluster {int(r.cluster_id)} {'is ' if i == 0 else ''}mostly {r.value} ({pct(float(r.share), 0)})"
             for i, r in enumerate(main.itertuples())]
    return "; " + ", ".join(items) if items else ""
