"""One builder per report section, in reading order: ``SECTIONS`` is the order and the numbering.

Each builder takes the ``ReportContext`` and returns a title, an anchor and its blocks; ``build_sections``
numbers them (1, 2, ... and A, B, ... for the appendices). Sentences come from ``text``; figures are named
by ``figures.CHART_NAMES``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from ..config import SEASONALITY_FEATURES, STABILITY_FEATURES
from ..sampling import sample_sentence
from . import formats, statistics_sections, text
from .context import ReportContext
from .document import Block, Bullets, Image, Link, Para, Section, Subheading, table
from .tables import top_customers

ANOMALIES_CSV = "anomalies.csv"
ISSUES_CSV = "data_quality_issues.csv"
CHECKS_PAGE = "checks.html"


@dataclass(frozen=True)
class Part:
    title: str
    anchor: str
    blocks: list[Block]
    appendix: bool = False


Builder = Callable[[ReportContext, Mapping[str, object]], Part]


def per_segment(ctx: ReportContext) -> pd.DataFrame:
    """The segment summary (value order) with the number of anomaly customers per segment."""
    counts = ctx.anomalies.groupby("profitability_segment")["customer_id"].nunique() if len(ctx.anomalies) else {}
    frame = ctx.summary.copy()
    frame["anomaly_customers"] = frame["profitability_segment"].map(lambda s: int(counts.get(s, 0)))
    return frame


def _fair_and_base_auc(ctx: ReportContext) -> tuple[float | None, float | None]:
    models = ctx.models.anomaly
    if models.skipped:
        return None, None

    def auc(name: str) -> float | None:
        m = models.models.get(name)
        return m.cv["roc_auc"] if m is not None and not m.skipped and m.cv else None

    return auc("fair"), auc("baseline")


def tree_statement(ctx: ReportContext) -> str | None:
    """The segment tree's 'close to a threshold' sentence, from its top importance and its first split."""
    t = ctx.models.seg_tree
    if t.skipped or not t.threshold_feature or not len(t.importances):
        return None
    share = float(t.importances["importance"].iloc[0])
    split = None
    if t.estimator is not None and t.estimator.tree_.feature[0] >= 0 and t.feature_names:
        split = (t.feature_names[t.estimator.tree_.feature[0]], float(t.estimator.tree_.threshold[0]))
    return text.segment_tree_statement(t.threshold_feature, share, t.accuracy_cv, split)


# ------------------------------------------------------------------------------------------------ 1
def summary(ctx: ReportContext, figures: Mapping[str, object]) -> Part:
    """What was found, how sure we are, what to do next: every sentence from ``text`` with its number."""
    seg = per_segment(ctx)
    g = ctx.inference.primary
    found = [text.found(ctx.overview), text.where(seg), text.segment_definition(ctx.profile)]
    sure = [text.how_sure(g.anomaly_customers_in_strata, g.mde, len(g.strata))]
    sure += [text.verdict_sentence(r) for r in ctx.recs]
    sure.append(text.model_sentence(*_fair_and_base_auc(ctx), statistics_sections.difference_to_baseline(ctx)))
    top = top_customers(ctx.anomalies, 5)
    n_customers = ctx.anomalies["customer_id"].nunique() if len(ctx.anomalies) else 0
    todo = [text.action_segments(seg), text.action_customers(top, n_customers, len(ctx.anomalies)),
            text.action_conflicts(ctx.conflicts)]
    todo += [text.action_dimension(r) for r in ctx.recs]
    warnings = int(ctx.dq_groups.loc[ctx.dq_groups["severity"] == "warning", "issue_count"].sum()) \
        if len(ctx.dq_groups) else 0
    todo += [text.action_changes(ctx.changes), text.action_quality(ctx.dq.rejected_rows, warnings)]
    blocks: list[Block] = [Para("What we found", emphasis=True), Bullets(_present(found)),
                           Para("How sure we are", emphasis=True), Bullets(_present(sure)),
                           Para("What to do next", emphasis=True), Bullets(_present(todo)),
                           Link(f"All anomalies, one row per record ({ANOMALIES_CSV})", ANOMALIES_CSV)]
    return Part("Executive summary", "summary", blocks)


def _present(items: list[str | None]) -> tuple[str, ...]:
    return tuple(i for i in items if i)


# ------------------------------------------------------------------------------------------------ 2
def segments(ctx: ReportContext, figures: Mapping[str, object]) -> Part:
    """Segment definition, retention by segment with the threshold bands, and the per-segment counts."""
    threshold = ctx.run.threshold
    blocks: list[Block] = [Para(text.definition(threshold, ctx.run.threshold_mode))]
    tree = ctx.models.seg_tree
    definition = text.segment_definition(ctx.profile) or (None if tree.skipped else tree_statement(ctx)) \
        or text.no_segment_definition(None if tree.skipped else tree.accuracy_cv)
    blocks.append(Para(definition))
    if "retention_by_segment" in figures:
        blocks.append(Image("retention_by_segment", "Retention by segment (value order): every record, the segment "
                            "mean and the band inside which a record fits; anomalies in red"))
    seg = per_segment(ctx)
    columns = ["profitability_segment", "distinct_customers", "record_count", "avg_retention", "anomaly_customers",
               "anomaly_count", "above_count", "below_count", "anomaly_rate"]
    blocks.append(table(seg[columns], "Customers, records and anomalies per segment (value order)",
                        formats_by_column={"avg_retention": formats.num},
                        labels={"anomaly_customers": "Anomaly customers"}))
    blocks += [Para(s) for s in (text.rate_range(seg), ctx.rate_warning and "Warning: " + ctx.rate_warning) if s]
    if "anomaly_rate" in figures:
        blocks.append(Image("anomaly_rate", "Anomaly rate per segment (labels: anomaly records / records)"))
    if len(ctx.stats.cross):
        blocks.append(table(ctx.stats.cross, "Anomaly rate by dimension value (records)"))
    if len(ctx.stats.associations):
        blocks.append(table(ctx.stats.associations, "Chi-square: does the anomaly rate depend on the dimension?",
                            formats_by_column={"chi2": formats.num, "cramers_v": formats.num}))
    blocks += statistics_sections.anomaly_definition(ctx)
    return Part("Segments", "segments", blocks)


# ------------------------------------------------------------------------------------------------ 3
def anomalies(ctx: ReportContext, figures: Mapping[str, object]) -> Part:
    """The anomalies by customer: who, in which segment, how far off, and whether their copies disagree."""
    a = ctx.anomalies
    n = ctx.config.top_anomalies
    customers = a["customer_id"].nunique() if len(a) else 0
    repeated = int((a["records_of_customer"] > 1).sum()) if len(a) else 0
    blocks: list[Block] = [Para(
        f"{formats.count(len(a))} anomaly records belong to {formats.count(customers)} customers; "
        f"{formats.count(repeated)} records belong to a customer with more than one anomaly record (told apart by "
        "subsidiary and segmentation date). 'Conflicting copies' marks a record whose (customer, subsidiary) key "
        "has copies that disagree on segment or retention.")]
    shown = a.head(n)[["anomaly_rank", "customer_id", "subsidiary_id", "segmentation_date", "customer_name",
                       "profitability_segment",
                       "retention_probability", "segment_avg_retention", "retention_deviation", "cluster_id",
                       "conflicting_copies"]]
    shown = shown.assign(segmentation_date=shown["segmentation_date"].map(_date),
                         retention_probability=shown["retention_probability"].map(formats.num),
                         segment_avg_retention=shown["segment_avg_retention"].map(formats.num))
    blocks.append(table(shown, f"The {formats.count(len(shown))} largest deviations "
                        f"({formats.count(shown['customer_id'].nunique())} customers)"))
    blocks.append(Link(f"All {formats.count(len(a))} anomaly records ({formats.count(customers)} customers): "
                       f"{ANOMALIES_CSV}", ANOMALIES_CSV))
    return Part("Anomalies by customer", "anomalies", blocks)


def _date(value: object) -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)[:10]


# ------------------------------------------------------------------------------------------------ 4
def evidence(ctx: ReportContext, figures: Mapping[str, object]) -> Part:
    """The within-segment tests behind the verdicts: what they rest on, the verdicts, the strongest tests."""
    result, g = ctx.inference, ctx.inference.primary
    blocks: list[Block] = [Para(
        "Question: within its segment, does a customer's behaviour explain why its retention does not fit? "
        "Anomalies are compared with normal records only inside segments holding both (" + ", ".join(g.strata or
        ("none",)) + "); each customer counts once (its records weigh 1 / copies). Numeric inputs: van Elteren's "
        "stratified test; category levels and threshold rules: Cochran-Mantel-Haenszel. Effect: Cliff's δ "
        "(negligible < 0.147 ≤ small < 0.33 ≤ medium < 0.474 ≤ large) with a 95% customer-bootstrap CI; q: "
        "Benjamini-Hochberg within each dimension. 'Supported' needs q < 0.05, a CI clear of the negligible band, and "
        "the same result under both grains.")]
    sample_note = sample_sentence(ctx.sample) if ctx.sample is not None else None
    if sample_note:
        blocks.append(Para(sample_note))
    sizes = [g] + ([result.other] if result.other is not None and result.other is not g else [])
    blocks.append(table(pd.DataFrame([{
        "grain": x.grain, "customers": x.customers, "records": x.records, "anomaly_customers": x.anomaly_customers,
        "anomaly_records": x.anomaly_records, "customers_compared": x.customers_in_strata,
        "anomaly_customers_compared": x.anomaly_customers_in_strata, "mde": x.mde} for x in sizes]),
        "What the tests rest on", formats_by_column={"mde": lambda v: formats.num(v, 2)},
        labels={"mde": "Min. detectable δ", "grain": "Grain"}))
    blocks.append(Para("Other grain: " + result.other_note + "."))
    blocks.append(table(_verdict_rows(ctx), "Verdict per dimension, with the best test under each grain",
                        labels={"ci": "95% CI", "grain": "Grain", "input": "Input", "contrast": "Contrast",
                                "test": "Test", "delta": "Cliff's δ"}))
    blocks += statistics_sections.untestable_inputs(ctx)
    blocks.append(Subheading("Recommendations in full", "recommendations"))
    blocks.append(Bullets(tuple(f"{r.dimension} ({text.VERDICT_WORDS.get(r.verdict, r.verdict)}): {r.text}"
                                for r in ctx.recs)))
    strongest = _strongest_tests(ctx)
    if len(strongest):
        blocks.append(table(strongest, f"Strongest within-segment tests per dimension ({g.grain} grain; every test "
                            "is in metrics.json)", labels={"customers_an": "Customers (anomaly / normal)",
                                                           "magnitude": "Size", "input": "Input",
                                                           "contrast": "Contrast", "delta": "Cliff's δ"}))
    return Part("Within-segment evidence", "evidence", blocks)


def _verdict_rows(ctx: ReportContext) -> pd.DataFrame:
    result, g = ctx.inference, ctx.inference.primary
    rows = []
    for v in result.verdicts:
        for primary, ev in ((True, v.evidence), (False, v.other_grain)):
            ev = ev or {}
            lo, hi = (ev.get("ci") or [None, None])[:2]
            rows.append({"dimension": v.dimension if primary else "",
                         "verdict": text.VERDICT_WORDS.get(v.verdict, v.verdict) if primary else "",
                         "grain": g.grain if primary else (result.other.grain if result.other else "n/a"),
                         "input": ev.get("input", ""), "contrast": ev.get("contrast", ""),
                         "delta": ev.get("delta"), "ci": f"[{formats.signed(lo)}, {formats.signed(hi)}]" if ev else "",
                         "q_value": ev.get("q_value"), "test": ev.get("test", "")})
    return pd.DataFrame(rows)


def _strongest_tests(ctx: ReportContext, per_dimension: int = 5) -> pd.DataFrame:
    g = ctx.inference.primary
    tests = sorted((t for ts in g.tests.values() for t in ts if t.testable),
                   key=lambda t: (t.dimension, t.q_value, -abs(t.delta), t.input, t.contrast))
    shown, seen = [], {}
    for t in tests:
        seen[t.dimension] = seen.get(t.dimension, 0) + 1
        if seen[t.dimension] <= per_dimension:
            shown.append({"dimension": t.dimension, "input": t.input, "contrast": t.contrast, "delta": t.delta,
                          "magnitude": t.magnitude, "p_value": t.p_value, "q_value": t.q_value,
                          "customers_an": f"{t.customers_anomaly} / {t.customers_normal}"})
    return pd.DataFrame(shown)


# ------------------------------------------------------------------------------------------------ 5
def behaviour(ctx: ReportContext, figures: Mapping[str, object]) -> Part:
    """Descriptive, pooled comparison of anomalies with normal records, per feature family."""
    s, config = ctx.stats, ctx.config
    blocks: list[Block] = [Para(
        "Descriptive: these comparisons pool all segments and count records, so they partly measure the segment; "
        "the verdicts rest on section 4. n, mean and median come from anomaly_feature_comparison; the test is a "
        f"two-sided Mann-Whitney U on at most {formats.count(config.stat_sample_size)} records per group; effect r is "
        f"the rank-biserial correlation (positive: anomalies higher). 'large' = p < {config.alpha_large} and |r| ≥ "
        f"{config.effect_large}; 'noise' = p ≥ {config.alpha_noise}; otherwise 'small'.")]
    merged = s.comparison.merge(s.significance[["feature_name", "rank_biserial", "p_value", "verdict"]],
                                on="feature_name", how="left")
    blocks.append(table(merged, "Feature comparison: anomaly vs normal records (feature order from the mart)"))
    blocks += [Subheading("Transaction stability", "stability"),
               Para(text.family("transaction stability", s.significance, STABILITY_FEATURES))]
    blocks += _images(figures, ("transaction_behaviour", "Lifetime transaction count vs monthly rate; anomalies in "
                                "red"), ("volatility", "Transaction value volatility: anomalies vs normal records"))
    blocks += [Subheading("Seasonality", "seasonality"),
               Para(text.family("seasonality", s.significance, SEASONALITY_FEATURES))]
    blocks += _images(figures, ("seasonal_distribution", "Mean quarterly shares per segment and group, with the "
                                "number of records in each group"))
    overall = next(c for c in s.correlations if c.group == "all")
    blocks += [Subheading("Value realization", "value-realization"),
               table(pd.DataFrame([c.__dict__ for c in s.correlations]), "Correlation of comprehensive_customer_score "
                     f"with total_revenue (at most {formats.count(config.stat_sample_size)} records per row)"),
               Para(text.correlation(overall.spearman, overall.pearson) + " "
                    + text.family("value", s.significance, ("revenue_per_score", "value_mismatch_z")))]
    blocks += _images(figures, ("value_realization", "comprehensive_customer_score vs total_revenue; anomalies in red"))
    blocks.append(Subheading("Threshold rules", "threshold-rules"))
    blocks.append(_rules_table(s.rules) if len(s.rules) else Para("anomaly_rule_lift is empty."))
    return Part("Behaviour of anomalies (descriptive)", "behaviour", blocks)


RULE_COLUMNS = ("rule_name", "anomaly_hit_rate", "normal_hit_rate", "hit_rate_difference_pp", "lift_pp", "lift",
                "odds_ratio", "odds_ratio_ci", "fisher_q", "mh_odds_ratio", "mh_segments")


def _rules_table(rules: pd.DataFrame):
    """Threshold rules, pooled over segments: hit rates, their difference (never called lift), lift, odds ratio
    with its CI, Fisher q; the within-segment answer is the Mantel-Haenszel odds ratio (and section 4)."""
    frame = rules.copy()
    if {"odds_ratio_ci_low", "odds_ratio_ci_high"} <= set(frame.columns):
        frame["odds_ratio_ci"] = [f"[{formats.num(lo)}, {formats.num(hi)}]"
                                  for lo, hi in zip(frame["odds_ratio_ci_low"], frame["odds_ratio_ci_high"], strict=True)]
    frame = frame[[c for c in RULE_COLUMNS if c in frame.columns]]
    return table(frame, "Threshold rules, pooled over segments: hit rates, their difference in percentage points, "
                 "lift = P(anomaly | rule) / P(anomaly), odds ratio [95% CI], Fisher q; Mantel-Haenszel odds ratio "
                 "within segments", formats_by_column={c: formats.num for c in (
                     "hit_rate_difference_pp", "lift_pp", "lift", "odds_ratio", "mh_odds_ratio")},
                 labels={"hit_rate_difference_pp": "Hit-rate difference (pp)", "lift": "Lift",
                         "odds_ratio": "Odds ratio", "odds_ratio_ci": "95% CI", "fisher_q": "Fisher q",
                         "mh_odds_ratio": "Odds ratio within segments (MH)", "mh_segments": "Segments (MH)"})


def _images(figures: Mapping[str, object], *charts: tuple[str, str]) -> list[Block]:
    return [Image(name, caption) for name, caption in charts if name in figures]


# ------------------------------------------------------------------------------------------------ 6
def clusters(ctx: ReportContext, figures: Mapping[str, object]) -> Part:
    """KMeans on the anomaly records: K, the profiles (one column per cluster) and their composition."""
    c, config = ctx.models.clustering, ctx.config
    if c.skipped:
        return Part("Clusters of anomaly records", "clusters", [Para(c.note + ". No cluster chart is produced.")])
    blocks: list[Block] = [Para(
        f"KMeans on {formats.count(c.n_records)} anomaly records (fitted on {formats.count(c.n_fit)}; n_init "
        f"{config.n_init}, seed {config.random_state}) using standardised features: {', '.join(c.features)}. K chosen "
        f"by {c.k_selection}: K = {c.chosen_k}. " + (
            f"Labels name the features whose cluster median differs from the median of every record by at least "
            f"{config.label_min_z_gap} standard deviations of every record"
            if c.label_reference.startswith("population") else
            f"Labels name the features whose cluster median z-score differs from the other clusters' by at least "
            f"{config.label_min_z_gap}") + ". Clusters are descriptive: they never change a verdict.")]
    if c.feature_notes:
        blocks.append(Bullets(tuple(c.feature_notes)))
    blocks.append(table(c.k_scores, "Silhouette and inertia per K",
                        formats_by_column={"silhouette": formats.num, "inertia": formats.num}))
    stability = text.cluster_stability(c.k_scores, c.chosen_k, c.composition)
    if stability:
        blocks.append(Para(stability))
    blocks += _images(figures, ("silhouette", "Silhouette (higher is better) and inertia per K"))
    blocks.append(_profiles_table(c.profiles))
    blocks += _images(figures, ("clusters", "Anomaly clusters in a 2-D PCA projection, with centroids"))
    comp = c.composition
    for dim in ("profitability_segment", "lifecycle_stage", "seasonal_preference"):
        part = comp[comp["dimension"] == dim].drop(columns="dimension") if len(comp) else comp
        if len(part):
            blocks.append(table(part, f"Cluster composition by {formats.label(dim).lower()}"))
    return Part("Clusters of anomaly records", "clusters", blocks)


def _profiles_table(profiles: pd.DataFrame):
    """One column per cluster, one row per property (the wide form did not fit the page)."""
    rows = []
    for column in profiles.columns:
        if column == "cluster_id":
            continue
        values = profiles[column].tolist()
        rows.append([formats.label(column)] + [formats.cell(column, v) for v in values])
    headers = ["", *[f"Cluster {i}" for i in profiles["cluster_id"]]]
    from .document import text_table

    return text_table(headers, rows, "Cluster sizes and feature medians")


# ------------------------------------------------------------------------------------------------ 7
def changes(ctx: ReportContext, figures: Mapping[str, object], limit: int = 30) -> Part:
    """Who became an anomaly since the last build and who stopped being one (marts.customer_fit_changes)."""
    frame = ctx.changes
    if frame is None:
        return Part("Changes since the last build", "changes", [Para("customer_fit_changes was not provided.")])
    if not len(frame):
        return Part("Changes since the last build", "changes", [Para(text.action_changes(frame) or "")])
    kinds = frame["change_type"].astype(str).value_counts().rename_axis("change_type").reset_index(name="customers")
    blocks: list[Block] = [Para(text.action_changes(frame) or ""), table(kinds, "Customers per kind of change")]
    columns = [c for c in ("customer_id", "change_type", "previous_segment", "current_segment", "previous_retention",
                           "current_retention") if c in frame.columns]
    blocks.append(table(frame[columns].head(limit), f"The first {formats.count(min(limit, len(frame)))} of "
                        f"{formats.count(len(frame))} changed customers",
                        formats_by_column={"previous_retention": formats.num, "current_retention": formats.num}))
    return Part("Changes since the last build", "changes", blocks)


# ------------------------------------------------------------------------------------------------ 8
def quality(ctx: ReportContext, figures: Mapping[str, object]) -> Part:
    """Reconciliation, issues grouped by reason (full list as CSV), conflicting customers, check warnings."""
    dq = ctx.dq
    blocks: list[Block] = []
    if len(dq.reconciliation):
        blocks.append(table(dq.reconciliation, "Input rows: input = clean + rejected"))
    if len(ctx.dq_groups):
        blocks.append(table(ctx.dq_groups, f"Data-quality issues grouped by reason ({formats.count(dq.total_issues)} "
                            "rows in all; rejected rows first)"))
        blocks.append(Link(f"Every issue, one row each ({ISSUES_CSV})", ISSUES_CSV))
    else:
        blocks.append(Para("No data-quality issues were recorded."))
    if len(ctx.conflicts):
        blocks.append(table(ctx.conflicts, f"Customers with conflicting copies ({formats.count(len(ctx.conflicts))}; "
                            "their records are weighted so each customer counts once in the within-segment tests)",
                            formats_by_column={"min_retention": formats.num, "max_retention": formats.num}))
    if ctx.checks_href is None and not ctx.check_warnings:
        blocks.append(Para("The great-expectations checks did not run with this report (`segfit run` runs them; "
                           "`segfit check` runs them alone)."))
        return Part("Data quality", "data-quality", blocks)
    blocks.append(Para(f"Check warnings: {formats.count(len(ctx.check_warnings))}."))
    if ctx.check_warnings:
        blocks.append(Bullets(ctx.check_warnings))
    if ctx.checks_href:
        blocks.append(Link("Every data-quality check and its result (checks page)", ctx.checks_href))
    return Part("Data quality", "data-quality", blocks)


# ------------------------------------------------------------------------------------------------ A
def appendix_models(ctx: ReportContext, figures: Mapping[str, object]) -> Part:
    """Model detail: the tree that predicts the segment and the four trees that predict an anomaly."""
    blocks: list[Block] = [Subheading("What defines the segment", "segment-tree")]
    blocks += _segment_tree_blocks(ctx)
    blocks.append(Subheading("What predicts an anomaly", "anomaly-models"))
    blocks += _anomaly_model_blocks(ctx, figures)
    blocks += statistics_sections.grouped_assessment(ctx)
    return Part("Appendix: Model detail", "appendix-models", blocks, appendix=True)


def _segment_tree_blocks(ctx: ReportContext) -> list[Block]:
    t, config = ctx.models.seg_tree, ctx.config
    if t.skipped:
        return [Para(t.note + ".")]
    from ..modeling import top_importances

    return [
        Para(f"A decision tree (max depth {config.max_depth}) predicts the segment from behaviour, fitted on "
             f"{formats.count(t.n_fit)} of {formats.count(t.n_records)} records: in-sample accuracy "
             f"{formats.pct(t.accuracy_in_sample)}, cross-validated {formats.pct(t.accuracy_cv)} ({t.cv_note})."),
        table(t.per_class, "Per-segment precision and recall (in-sample and cross-validated)"),
        table(top_importances(t.importances, config.top_importances), "Segment tree: largest importances"),
        Para(tree_statement(ctx) or f"No single feature carries {formats.pct(config.threshold_importance, 0)} of the "
             "importance: the segment combines several behaviour features."),
        table(t.top_rules.head(8), "Largest leaves of the segment tree (fit rows)"),
        _code(t.rules_text, "Segment tree rules (sklearn export_text)"),
    ]


def _code(body: str, title: str):
    from .document import Code

    return Code(body, title)


def _model_rows(ctx: ReportContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    from ..modeling import MODEL_NAMES

    single, repeated = [], []
    for name in MODEL_NAMES:
        m = ctx.models.anomaly.models.get(name)
        if m is None or m.skipped:
            continue
        label = ("LEAKAGE: " if m.leakage_by_design else "") + name
        cv, rep = m.cv or {}, (m.cv_repeated.summary() if m.cv_repeated is not None else {})
        single.append({"model": label, "features": m.description, "in-sample ROC-AUC": m.in_sample.get("roc_auc"),
                       "in-sample recall": formats.pct(m.in_sample.get("recall_anomaly")),
                       "CV ROC-AUC": cv.get("roc_auc"), "leakage flags": "; ".join(m.leakage) or "none"})
        repeated.append({"model": label, **{k: _mean_sd(rep.get(key)) for k, key in (
            ("ROC-AUC", "roc_auc"), ("PR-AUC", "pr_auc"), ("balanced accuracy", "balanced_accuracy"),
            ("Brier", "brier"))}})
    return pd.DataFrame(single), pd.DataFrame(repeated)


def _mean_sd(entry: Mapping[str, float] | None) -> str:
    if not entry:
        return formats.MISSING
    mean, sd = entry.get("mean"), entry.get("sd")
    return formats.num(mean) + (f" ± {formats.num(sd, 2)}" if sd is not None and sd == sd else "")


def _anomaly_model_blocks(ctx: ReportContext, figures: Mapping[str, object]) -> list[Block]:
    models, config = ctx.models.anomaly, ctx.config
    if models.skipped:
        return [Para(models.note + ". No tree charts are produced.")]
    from ..modeling import top_importances

    single, repeated = _model_rows(ctx)
    blocks: list[Block] = [
        Para(f"Four trees (max depth {config.max_depth}, class weight {config.class_weight}) predict the anomaly flag. "
             "The 'full' model contains the retention columns that define the flag: it is leakage, shown only to make "
             "the leak visible; the other models leave every column derived from retention out by name. A model is "
             f"flagged as leaky when one of its columns alone has an out-of-fold ROC-AUC ≥ {config.leak_auc} or its "
             f"CV ROC-AUC is ≥ {config.leak_auc}."),
        table(single, "Anomaly models: in-sample fit, and the mean CV ROC-AUC of the repeated grouped CV below",
              formats_by_column={"in-sample ROC-AUC": formats.num, "CV ROC-AUC": formats.num}),
        table(repeated, "Anomaly models: repeated stratified k-fold grouped by customer (mean ± SD)"),
    ]
    blocks += _images(figures, ("feature_importances", "Feature importances per anomaly model (three decimals)"))
    fair = models.models.get("fair")
    if fair is not None and not fair.skipped:
        blocks += _images(figures, ("decision_tree", f"Fair anomaly tree, first {config.tree_plot_depth} levels "
                                    "(anomaly = red, normal = grey); the full rules follow"))
        blocks.append(table(fair.top_rules.head(5), "Fair tree: leaves that predict an anomaly best"))
        blocks.append(_code(fair.rules_text, "Fair tree rules, every level (sklearn export_text)"))
    for name, m in models.models.items():
        if not m.skipped:
            blocks.append(table(top_importances(m.importances, config.top_importances),
                                f"{'LEAKAGE ' if m.leakage_by_design else ''}{name} model: largest importances"))
    blocks.append(Para(f"Written back as analysis.anomaly_model_scores: {models.scores_source}."))
    if "reliability" in figures:
        from .figures import written_back_reliability

        blocks.append(Para(text.reliability(written_back_reliability(ctx))))
        blocks += _images(figures, ("reliability", "Reliability of the written-back anomaly probability: observed "
                                    "anomaly share against the mean prediction per bin (diagonal = calibrated)"))
    return blocks


# ------------------------------------------------------------------------------------------------ B
def appendix_method(ctx: ReportContext, figures: Mapping[str, object]) -> Part:
    config = ctx.config
    sample_note = sample_sentence(ctx.sample) if ctx.sample is not None else None
    notes = ([sample_note] if sample_note else []) + [
        f"Seed {config.random_state} everywhere; charts plot at most {formats.count(config.plot_sample_size)} points.",
        f"Decision trees are fitted on at most {formats.count(config.tree_rows)} records (stratified sample), KMeans on "
        f"at most {formats.count(config.cluster_rows)} anomaly records, each CV fold model on at most "
        f"{formats.count(config.cv_rows)} records.",
        "Numeric features: missing values imputed with the median of the training records inside each fit (every "
        "tree and CV fold: a SimpleImputer in the pipeline), for KMeans with the column median; all-null or constant "
        "columns dropped. "
        "Categorical features: missing becomes '(missing)', one-hot encoded.",
    ]
    if not ctx.models.seg_tree.skipped:
        notes += [f"segment tree: {n}" for n in ctx.models.seg_tree.feature_notes]
    fair = ctx.models.anomaly.models.get("fair") if not ctx.models.anomaly.skipped else None
    if fair is not None:
        notes += [f"fair model: {n}" for n in fair.feature_notes]
    notes += list(ctx.notes)
    return Part("Appendix: Method notes", "appendix-method", [Bullets(tuple(notes))], appendix=True)


SECTIONS: tuple[Builder, ...] = (summary, segments, anomalies, evidence, behaviour, clusters, changes, quality,
                                 appendix_models, appendix_method)


def build_sections(ctx: ReportContext, figures: Mapping[str, object]) -> tuple[Section, ...]:
    """Run every builder in order; number the sections 1, 2, ... and the appendices A, B, ..."""
    out, number, letter = [], 0, 0
    for builder in SECTIONS:
        part = builder(ctx, figures)
        if part.appendix:
            label = chr(ord("A") + letter)
            letter += 1
            title = part.title.removeprefix("Appendix: ")
            out.append(Section(f"Appendix {label}", title, part.anchor, tuple(part.blocks)))
        else:
            number += 1
            out.append(Section(str(number), part.title, part.anchor, tuple(part.blocks)))
    return tuple(out)
