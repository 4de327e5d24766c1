"""The report's charts, drawn from the context (``plots`` draws each one). ``CHART_NAMES`` is their order."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from .. import plots
from ..analysis import anomaly_mask, text_column
from .context import PendingContext, ReportContext

CHART_NAMES: tuple[str, ...] = (
    "retention_by_segment",
    "anomaly_rate",
    "transaction_behaviour",
    "volatility",
    "seasonal_distribution",
    "value_realization",
    "silhouette",
    "clusters",
    "decision_tree",
    "feature_importances",
    "reliability",
)


def written_back_reliability(ctx: ReportContext) -> plots.Reliability | None:
    """The reliability curve of the written-back ``anomaly_probability`` (out-of-fold) against each record's
    anomaly flag; None when no probability was written back or only one class is present. Computed once per
    context (the chart and the sentence both use it)."""
    if "written_back_reliability" not in ctx.derived:
        ctx.derived["written_back_reliability"] = _written_back_reliability(ctx)
    return ctx.derived["written_back_reliability"]  # type: ignore[return-value]


def _written_back_reliability(ctx: ReportContext) -> plots.Reliability | None:
    scores = ctx.models.anomaly.scores
    if ctx.models.anomaly.skipped or not len(scores) or "customer_record_id" not in ctx.fit.columns:
        return None
    if ctx.models.anomaly.score_flags is not None and len(ctx.models.anomaly.score_flags) == len(scores):
        y = ctx.models.anomaly.score_flags  # each scored record's flag, carried in the scores' order
    else:
        flags = pd.Series(anomaly_mask(ctx.fit), index=text_column(ctx.fit, "customer_record_id", missing=""))
        y = flags.reindex(scores["customer_record_id"].to_numpy()).to_numpy()
    if pd.isna(y).any() or len(set(y.tolist())) < 2:
        return None
    return plots.reliability_of(y.astype(bool), scores["anomaly_probability"].to_numpy(dtype=float))


def data_figures(pending: PendingContext | ReportContext) -> dict[str, Figure]:
    """The charts of the data (records, segment summaries, seasonal mart, correlations), which need no model:
    the report draws them while its helper process still fits (``context.start_context``)."""
    fit, config, stats = pending.fit, pending.config, pending.stats
    figures: dict[str, Figure] = {}
    if len(fit):
        figures["retention_by_segment"] = plots.retention_by_segment(
            fit, pending.segment_order, pending.run.threshold, pending.run.threshold_mode, config)
        # on large data read in bounded memory, each chart reads the columns it draws (``fit_frame``)
        figures["transaction_behaviour"] = plots.transaction_behaviour(
            pending.fit_frame(("transaction_count", "avg_transactions_per_month")), config)
        figures["volatility"] = plots.volatility(pending.fit_frame(("transaction_value_volatility",)), config)
        overall = next(c for c in stats.correlations if c.group == "all")
        figures["value_realization"] = plots.value_realization(
            pending.fit_frame(("comprehensive_customer_score", "total_revenue")), overall.pearson, overall.spearman,
            config)
    if len(stats.seasonal):
        figures["seasonal_distribution"] = plots.seasonal_distribution(stats.seasonal, config, pending.segment_order)
    if len(pending.summary):
        figures["anomaly_rate"] = plots.anomaly_rate(pending.summary, config)
    return figures


def model_figures(ctx: ReportContext) -> dict[str, Figure]:
    """The charts of the clusters and the trees."""
    config = ctx.config
    figures: dict[str, Figure] = {}
    clustering, models = ctx.models.clustering, ctx.models.anomaly
    if not clustering.skipped:
        figures["silhouette"] = plots.silhouette(clustering, config)
        figures["clusters"] = plots.clusters(clustering, config)
    if not models.skipped:
        fair = models.models.get("fair")
        if fair is not None and not fair.skipped and fair.estimator is not None:
            figures["decision_tree"] = plots.decision_tree(fair, config)
        if any(not m.skipped for m in models.models.values()):
            figures["feature_importances"] = plots.feature_importances(models.models, config)
        written = written_back_reliability(ctx)
        if written is not None:
            raw = ((getattr(fair, "assessment", None) or {}).get("calibration") or {}).get("raw")
            figures["reliability"] = plots.reliability(written, raw, config)
    return figures


def build_figures(ctx: ReportContext, data: dict[str, Figure] | None = None) -> dict[str, Figure]:
    """Every chart the data allows, in ``CHART_NAMES`` order; ``data``: the data charts already drawn
    (``data_figures``)."""
    figures = {**(data_figures(ctx) if data is None else data), **model_figures(ctx)}
    return {name: figures[name] for name in CHART_NAMES if name in figures}
