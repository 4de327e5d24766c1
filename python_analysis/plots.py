"""Figures for the report. Each function takes data/results and returns a matplotlib Figure (Agg backend)."""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.tree import plot_tree  # noqa: E402

from .analysis import anomaly_mask, bounded_indices, numeric_column, text_column  # noqa: E402
from .config import ReportConfig  # noqa: E402
from .modeling import AnomalyModel, ClusteringResult, top_importances  # noqa: E402

ANOMALY_COLOR = "#d62728"
NORMAL_COLOR = "#7f7f7f"
QUARTER_COLORS = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd")
# categorical colours for clusters: tab10 without its red (anomaly) and grey (normal)
CLUSTER_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")


def _figure(config: ReportConfig, size: tuple[float, float] | None = None) -> Figure:
    fig = Figure(figsize=size or config.figure_size, dpi=config.dpi, layout="constrained")
    FigureCanvasAgg(fig)  # no pyplot global state; Agg renderer attached
    return fig


def figure_png(fig: Figure, dpi: int) -> bytes:
    """PNG bytes without timestamp/software metadata, so identical figures give identical bytes. zlib level 1:
    on the report's charts, about 30 % less encoding time than Pillow's default (6) for 3 % more bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def close(fig: Figure) -> None:
    plt.close(fig)


def _plot_positions(n: int, config: ReportConfig) -> np.ndarray:
    return bounded_indices(n, config.plot_sample_size, config.random_state)


def _log_axis(values: np.ndarray) -> bool:
    finite = values[np.isfinite(values)]
    if len(finite) < 2 or finite.min() <= 0:
        return False
    return finite.max() / finite.min() > 1000


def transaction_behaviour(fit: pd.DataFrame, config: ReportConfig) -> Figure:
    idx = _plot_positions(len(fit), config)
    mask = anomaly_mask(fit)[idx]
    x = numeric_column(fit, "transaction_count")[idx]
    y = numeric_column(fit, "avg_transactions_per_month")[idx]
    fig = _figure(config)
    ax = fig.add_subplot()
    ax.scatter(
        x[~mask],
        y[~mask],
        s=8,
        alpha=0.35,
        color=NORMAL_COLOR,
        label=f"normal (n={int((~mask).sum())})",
        linewidths=0,
    )
    ax.scatter(
        x[mask],
        y[mask],
        s=14,
        alpha=0.8,
        color=ANOMALY_COLOR,
        label=f"anomaly (n={int(mask.sum())})",
        linewidths=0,
    )
    ax.set_xlabel("transaction_count (lifetime transactions)")
    ax.set_ylabel("avg_transactions_per_month")
    ax.set_title(f"Transaction behaviour: lifetime count vs monthly rate (plotted {len(idx)} of {len(fit)})")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return fig


def volatility(fit: pd.DataFrame, config: ReportConfig) -> Figure:
    """Histograms up to the 99th percentile; the records above it are counted in the axis label, never piled
    into the last bin (which drew a false spike at the right edge)."""
    values = numeric_column(fit, "transaction_value_volatility")
    mask = anomaly_mask(fit)
    fig = _figure(config)
    ax = fig.add_subplot()
    finite = values[np.isfinite(values)]
    hidden = 0
    lo = hi = 0.0
    if len(finite):
        lo, hi = (float(v) for v in np.quantile(finite, [0.0, 0.99]))
        hi = hi if hi > lo else lo + 1.0
        hidden = int((finite > hi).sum())
        bins = np.linspace(lo, hi, 40)
        for group, sel, color in (("normal", ~mask, NORMAL_COLOR), ("anomaly", mask, ANOMALY_COLOR)):
            v = values[sel]
            v = v[np.isfinite(v)]
            if len(v):
                ax.hist(v[v <= hi], bins=bins, density=True, alpha=0.5, color=color,
                        label=f"{group} (n={len(v):,}, median={np.median(v):.3g})")
        ax.legend(loc="best")
    note = f"; {hidden:,} records above the 99th percentile ({hi:.3g}) not drawn" if hidden else ""
    ax.set_xlabel(f"transaction value volatility{note}")
    ax.set_ylabel("density")
    ax.set_title("Transaction value volatility: anomalies vs normal records")
    ax.grid(alpha=0.3)
    return fig


def seasonal_distribution(seasonal: pd.DataFrame, config: ReportConfig, order: Sequence[str] = ()) -> Figure:
    """Quarterly shares per segment (value order) and group; each tick names the group's number of records."""
    frame = seasonal.copy()
    frame["grouping_level"] = text_column(frame, "grouping_level")
    frame["profitability_segment"] = text_column(frame, "profitability_segment", missing="(all)")
    frame["anomaly_group"] = text_column(frame, "anomaly_group")
    seg = frame[(frame["grouping_level"] == "segment") & frame["anomaly_group"].isin(["anomaly", "normal"])]
    rank = {s: i for i, s in enumerate(order)}
    seg = seg.assign(_rank=seg["profitability_segment"].map(lambda s: rank.get(s, len(rank))))
    seg = seg.sort_values(["_rank", "profitability_segment", "anomaly_group"], kind="mergesort")
    sizes = pd.to_numeric(seg.get("record_count"), errors="coerce").fillna(0).astype(int)
    labels = [f"{s}\n{g}\nn={n:,}" for s, g, n in zip(seg["profitability_segment"], seg["anomaly_group"], sizes,
                                                         strict=True)]
    width_in = max(config.figure_size[0], 1.1 * len(labels) + 1.5)
    fig = _figure(config, (width_in, config.figure_size[1] + 0.4))
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    for q in range(4):
        shares = pd.to_numeric(seg.get(f"q{q + 1}_share_mean"), errors="coerce").to_numpy(dtype=float)
        ax.bar(
            x + (q - 1.5) * 0.2, np.nan_to_num(shares), width=0.2, color=QUARTER_COLORS[q], label=f"Q{q + 1}"
        )
    ax.axhline(0.25, color="black", linestyle="--", linewidth=1, label="even (0.25)")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("mean share of transactions in quarter")
    ax.set_xlabel("segment (value order) / group / records in the group")
    ax.set_title("Quarterly transaction shares per segment: anomalies vs normal")
    ax.legend(loc="upper right", ncols=5, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def value_realization(fit: pd.DataFrame, pearson: float, spearman: float, config: ReportConfig) -> Figure:
    idx = _plot_positions(len(fit), config)
    mask = anomaly_mask(fit)[idx]
    x = numeric_column(fit, "comprehensive_customer_score")[idx]
    y = numeric_column(fit, "total_revenue")[idx]
    fig = _figure(config)
    ax = fig.add_subplot()
    ax.scatter(x[~mask], y[~mask], s=8, alpha=0.35, color=NORMAL_COLOR, label="normal", linewidths=0)
    ax.scatter(x[mask], y[mask], s=14, alpha=0.8, color=ANOMALY_COLOR, label="anomaly", linewidths=0)
    if _log_axis(y):
        ax.set_yscale("log")

    def fmt(v: float) -> str:
        return "n/a" if v is None or not math.isfinite(v) else f"{v:.2f}"

    ax.set_title(
        f"Value realization: score vs revenue (Pearson r={fmt(pearson)}, Spearman rho={fmt(spearman)})"
    )
    ax.set_xlabel("comprehensive_customer_score")
    ax.set_ylabel("total_revenue")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return fig


def anomaly_rate(summary: pd.DataFrame, config: ReportConfig) -> Figure:
    """Anomaly rate per segment, in the order of ``summary`` (value order)."""
    fig = _figure(config, (max(config.figure_size[0], 0.9 * len(summary) + 2), config.figure_size[1]))
    ax = fig.add_subplot()
    rates = summary["anomaly_rate"].fillna(0).to_numpy(dtype=float)
    x = np.arange(len(summary))
    bars = ax.bar(x, rates, color=ANOMALY_COLOR, alpha=0.8)
    for bar, count, total in zip(bars, summary["anomaly_count"], summary["record_count"], strict=True):
        ax.annotate(
            f"{int(count)}/{int(total)}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_xticks(x, summary["profitability_segment"].tolist(), rotation=20, ha="right")
    ax.set_xlabel("segment (value order)")
    ax.set_ylabel("anomaly rate (anomaly records / records)")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(0, max(0.05, float(rates.max()) * 1.2 if len(rates) else 0.05))
    ax.set_title("Classification anomaly rate per segment (labels: anomaly records / records)")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _band(mean: float, threshold: float, mode: str, sd: float = math.nan) -> tuple[float, float]:
    """The retention range that fits: mean ± threshold (absolute), ± threshold × |mean| (relative) or
    ± threshold × the segment's sample SD (zscore)."""
    width = threshold * abs(mean) if mode == "relative" else threshold * sd if mode == "zscore" else threshold
    return mean - width, mean + width


BAND_LABELS = {"relative": " × mean", "zscore": " × segment SD"}


def retention_by_segment(fit: pd.DataFrame, order: Sequence[str], threshold: float | None, mode: str | None,
                         config: ReportConfig) -> Figure:
    """Every record's retention (jittered strip) per segment in value order, the segment mean and the band
    inside which a record fits (mean ± threshold); anomalies, outside the band, in the anomaly colour."""
    segments = text_column(fit, "profitability_segment")  # compared as (Arrow) strings: no Python string per record
    retention = numeric_column(fit, "retention_probability")
    mask = anomaly_mask(fit)
    customers = text_column(fit, "customer_id") if "customer_id" in fit.columns else None
    fig = _figure(config, (max(config.figure_size[0], 1.3 * len(order) + 2), config.figure_size[1] + 0.5))
    ax = fig.add_subplot()
    idx = _plot_positions(len(fit), config)
    jitter = np.random.default_rng(config.random_state).uniform(-0.28, 0.28, len(idx))
    pos = {s: i for i, s in enumerate(order)}
    x = np.array([pos.get(s, -1) for s in segments.iloc[idx].to_numpy()], dtype=float)
    keep = x >= 0
    sel_idx, xs, js = idx[keep], x[keep], jitter[keep]
    anomaly = mask[sel_idx]
    ax.scatter(xs[~anomaly] + js[~anomaly], retention[sel_idx][~anomaly], s=7, alpha=0.35, color=NORMAL_COLOR,
               linewidths=0, label="fits its segment")
    ax.scatter(xs[anomaly] + js[anomaly], retention[sel_idx][anomaly], s=14, alpha=0.85, color=ANOMALY_COLOR,
               linewidths=0, label="classification anomaly")
    labels = []
    for i, name in enumerate(order):
        in_seg = (segments == name).to_numpy(dtype=bool)
        mean = float(np.nanmean(retention[in_seg])) if in_seg.any() else math.nan
        if math.isfinite(mean):
            ax.hlines(mean, i - 0.4, i + 0.4, color="black", linewidth=2, label="segment mean" if i == 0 else None)
            sd = float(np.nanstd(retention[in_seg], ddof=1)) if in_seg.sum() > 1 else math.nan
            if threshold is not None and math.isfinite(_band(mean, threshold, mode or "absolute", sd)[0]):
                low, high = _band(mean, threshold, mode or "absolute", sd)
                ax.fill_between([i - 0.4, i + 0.4], low, high, color="#4c78a8", alpha=0.12, linewidth=0,
                                label=f"fits: mean ± {threshold:g}{BAND_LABELS.get(mode or '', '')}"
                                if i == 0 else None)
        n_cust = int(customers[in_seg].nunique(dropna=False)) if customers is not None else 0
        labels.append(f"{name}\n{n_cust:,} customers\n{int(in_seg.sum()):,} records")
    ax.set_xticks(np.arange(len(order)), labels, fontsize=8)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("retention probability")
    ax.set_xlabel("segment (value order)")
    ax.set_title("Retention by segment: the mean, the band that fits, and the anomalies outside it")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=4, fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def silhouette(result: ClusteringResult, config: ReportConfig) -> Figure:
    fig = _figure(config)
    ax = fig.add_subplot()
    ks = result.k_scores
    ax.plot(ks["k"], ks["silhouette"], marker="o", color="#1f77b4", label="silhouette")
    ax.set_xlabel("K (number of clusters)")
    ax.set_ylabel("silhouette score", color="#1f77b4")
    ax.set_xticks(ks["k"].tolist())
    ax2 = ax.twinx()
    ax2.plot(ks["k"], ks["inertia"], marker="s", linestyle="--", color="#ff7f0e", label="inertia")
    ax2.set_ylabel("inertia (within-cluster sum of squares)", color="#ff7f0e")
    if result.chosen_k is not None:
        ax.axvline(result.chosen_k, color="black", linestyle=":", label=f"chosen K={result.chosen_k}")
    handles = ax.get_legend_handles_labels()
    handles2 = ax2.get_legend_handles_labels()
    ax.legend(handles[0] + handles2[0], handles[1] + handles2[1], loc="best")
    ax.set_title(f"KMeans on anomaly records: silhouette and inertia per K ({result.k_selection})")
    ax.grid(alpha=0.3)
    return fig


def clusters(result: ClusteringResult, config: ReportConfig) -> Figure:
    fig = _figure(config, (config.figure_size[0] + 1, config.figure_size[1] + 1.5))
    ax = fig.add_subplot()
    proj = result.projection
    labels = dict(zip(result.profiles["cluster_id"], result.profiles["cluster_label"], strict=True))
    sizes = dict(zip(result.profiles["cluster_id"], result.profiles["size"], strict=True))
    for c in sorted(labels):
        sel = proj["cluster_id"] == c
        ax.scatter(
            proj.loc[sel, "pc1"],
            proj.loc[sel, "pc2"],
            s=10,
            alpha=0.5,
            color=CLUSTER_COLORS[c % len(CLUSTER_COLORS)],
            linewidths=0,
            label=textwrap.shorten(f"{c} (n={sizes[c]}): {labels[c]}", width=110, placeholder="..."),
        )
    if result.centroids_2d is not None:
        ax.scatter(
            result.centroids_2d[:, 0],
            result.centroids_2d[:, 1],
            marker="X",
            s=160,
            color="black",
            edgecolors="white",
            label="centroids",
        )
    ev = result.explained_variance + [0.0] * (2 - len(result.explained_variance))
    ax.set_xlabel(f"PC1 ({ev[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ev[1]:.0%} of variance)")
    ax.set_title(f"Anomaly clusters (K={result.chosen_k}): 2-D PCA of the standardised clustering features")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8, ncols=1, frameon=False)
    ax.grid(alpha=0.3)
    return fig


def _readable(name: str) -> str:
    """A one-hot column 'lifecycle_stage=Mature' or a feature name, with spaces instead of underscores."""
    return name.replace("_", " ")


def decision_tree(model: AnomalyModel, config: ReportConfig) -> Figure:
    """The first ``tree_plot_depth`` levels of the fair tree; boxes coloured by the majority class in the
    report's colours (anomaly red, normal grey), shaded by how pure the node is."""
    fig = _figure(config, config.tree_figure_size)
    ax = fig.add_subplot()
    annotations = plot_tree(
        model.estimator,
        max_depth=config.tree_plot_depth,
        feature_names=[_readable(f) for f in model.feature_names],
        class_names=["normal", "anomaly"],
        filled=False,
        impurity=False,
        proportion=True,
        rounded=True,
        fontsize=9,
        ax=ax,
    )
    for annotation in annotations:
        label = annotation.get_text()
        box = annotation.get_bbox_patch()
        if box is None:
            continue
        if "class = " not in label:  # a "(...)" stub for the levels not drawn
            box.set_facecolor("white")
            box.set_edgecolor(NORMAL_COLOR)
            continue
        color = ANOMALY_COLOR if "class = anomaly" in label else NORMAL_COLOR
        # an opaque tint (colour mixed with white), so the arrows do not show through the text
        tint = 0.25 * np.array(matplotlib.colors.to_rgb(color)) + 0.75
        box.set_facecolor(tuple(tint))
        box.set_edgecolor(color)
    ax.set_title(
        f"Fair anomaly tree (no retention-derived feature): first {config.tree_plot_depth} of up to "
        f"{config.max_depth} levels; 'value' = class shares after class weighting; full rules in the report"
    )
    return fig


def feature_importances(models: Mapping[str, AnomalyModel], config: ReportConfig) -> Figure:
    shown = [m for m in models.values() if not m.skipped]
    cols = min(2, max(1, len(shown)))
    rows = math.ceil(len(shown) / cols) if shown else 1
    fig = _figure(config, (config.figure_size[0] * 1.6, 3.2 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel()[len(shown) :]:
        ax.set_visible(False)
    aucs = {m.name: m.cv["roc_auc"] for m in shown if m.cv and not m.leakage_by_design
            and math.isfinite(m.cv["roc_auc"])}
    best = max(aucs, key=lambda name: (aucs[name], name)) if aucs else None
    for ax, model in zip(axes.ravel(), shown, strict=False):
        top = top_importances(model.importances, config.top_importances)
        colors = ["#9467bd" if k == "categorical" else "#1f77b4" for k in top["kind"]]
        labels = [
            f"{f} [{'cat' if k == 'categorical' else 'num'}]"
            for f, k in zip(top["feature"], top["kind"], strict=True)
        ]
        ax.barh(np.arange(len(top)), top["importance"], color=colors, height=0.6)
        ax.set_yticks(np.arange(len(top)), labels)
        ax.set_ylim(config.top_importances - 0.5, -0.5)  # largest on top, same bar height in every panel
        auc = model.cv["roc_auc"] if model.cv else math.nan
        tag = "LEAKAGE " if model.leakage_by_design else ""
        mark = " - best without leakage" if model.name == best else ""
        ax.set_title(
            f"{tag}{model.name} model (CV ROC-AUC {auc:.3f}{mark})"
            if math.isfinite(auc)
            else f"{tag}{model.name} model (no CV)",
            fontsize=10,
            fontweight="bold" if mark else "normal",
        )
        ax.set_xlabel("importance (one-hot summed per source; zeros omitted)")
        ax.set_xlim(0, 1)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        "Anomaly decision trees: top feature importances per model ([cat]=categorical, [num]=numeric)"
    )
    return fig


RELIABILITY_BINS = 10


@dataclass(frozen=True)
class Reliability:
    """A reliability curve: per bin of predicted probability, its mean prediction and the observed rate."""

    mean_predicted: tuple[float, ...]
    observed_rate: tuple[float, ...]
    records_per_bin: tuple[int, ...]
    brier: float


def reliability_of(y: np.ndarray, proba: np.ndarray, bins: int = RELIABILITY_BINS) -> Reliability:
    """sklearn's ``calibration_curve`` (quantile bins: each about the same number of records; tied predictions
    share a bin, empty bins are dropped) and the Brier score of ``proba`` against the 0/1 labels ``y``."""
    y = np.asarray(y, dtype=bool)
    proba = np.asarray(proba, dtype=float)
    observed, predicted = calibration_curve(y, proba, n_bins=bins, strategy="quantile")
    edges = np.percentile(proba, np.linspace(0, 100, bins + 1))
    counts = np.bincount(np.searchsorted(edges[1:-1], proba), minlength=bins)
    return Reliability(tuple(float(v) for v in predicted), tuple(float(v) for v in observed),
                       tuple(int(c) for c in counts[counts > 0]), brier_score(y, proba))


def brier_score(y: np.ndarray, proba: np.ndarray) -> float:
    """The Brier score: the mean of (proba - y)^2, with y as 0/1. sklearn's ``brier_score_loss`` computes the
    same mean but validates and re-encodes its inputs first: 267 MB for 5M records, the report's peak."""
    return float(np.mean(np.square(np.asarray(proba, dtype=float) - np.asarray(y, dtype=float))))


def reliability(written: Reliability, raw: Mapping[str, Sequence[float]] | None, config: ReportConfig) -> Figure:
    """Reliability curve of the written-back (calibrated, out-of-fold) anomaly probability, against the
    diagonal of perfect calibration; the uncalibrated fair tree's out-of-fold curve (``raw``: the grouped
    assessment's ``calibration.raw``) for comparison when it is known."""
    fig = _figure(config, (config.figure_size[0], config.figure_size[0] * 0.8))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle=":", color="black", linewidth=1, label="perfectly calibrated")
    if raw and raw.get("mean_predicted"):
        brier = raw.get("brier")
        ax.plot(raw["mean_predicted"], raw["observed_rate"], marker="s", markersize=4, linestyle="--",
                color=NORMAL_COLOR, label="fair tree before calibration (out-of-fold, assessment sample"
                + (f"; Brier {brier:.3f})" if isinstance(brier, float) and math.isfinite(brier) else ")"))
    ax.plot(written.mean_predicted, written.observed_rate, marker="o", markersize=5, color=ANOMALY_COLOR,
            label=f"written-back anomaly_probability (calibrated, out-of-fold; Brier {written.brier:.3f})")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("mean predicted anomaly probability in the bin")
    ax.set_ylabel("observed share of anomaly records in the bin")
    sizes = written.records_per_bin
    ax.set_title(f"Reliability of the anomaly probability: {len(sizes)} bins of {min(sizes):,} to {max(sizes):,} "
                 f"records ({sum(sizes):,} in all)", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    return fig
