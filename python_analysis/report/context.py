"""Everything the report shows, computed once from the marts: the typed context every section reads.

``build_context`` is pure and deterministic (marts in, ``ReportContext`` out); sections only format it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple

import pandas as pd

from .. import inference as inf
from .. import worker
from ..analysis import (
    Correlation,
    DataQualitySummary,
    anomaly_mask,
    conflicting_customers,
    crosstab_association,
    crosstab_table,
    data_quality_summary,
    feature_comparison,
    feature_significance,
    ordered_features,
    rule_lift_table,
    sample_overview,
    segment_summary,
    text_column,
    value_realization,
)
from ..config import ReportConfig
from ..modeling import (
    AnomalyModelsResult,
    ClusteringResult,
    SegmentTreeResult,
    anomaly_clusters,
    cluster_inputs,
    empty_assignments,
    frame_with,
    model_matrix,
    segment_tree,
    start_anomaly_models,
)
from ..profile import DataProfile, data_profile
from ..sampling import AnalysisSample, analysis_sample, is_large
from ..verdicts import Recommendation, recommendations
from . import tables, text
from .runinfo import RunInfo

if TYPE_CHECKING:
    from ..warehouse.population import Population


@dataclass(frozen=True)
class Statistics:
    """The descriptive statistics: pooled feature comparison, rules, correlations, crosstabs."""

    comparison: pd.DataFrame
    significance: pd.DataFrame
    rules: pd.DataFrame
    correlations: list[Correlation]
    cross: pd.DataFrame
    associations: pd.DataFrame
    seasonal: pd.DataFrame


@dataclass(frozen=True)
class Models:
    clustering: ClusteringResult
    seg_tree: SegmentTreeResult
    anomaly: AnomalyModelsResult

    @property
    def assignments(self) -> pd.DataFrame:
        return self.clustering.assignments if not self.clustering.skipped else empty_assignments()


@dataclass(frozen=True)
class ReportContext:
    """Typed inputs of every section. Frames are the marts (or tables derived from them), already ordered."""

    config: ReportConfig
    grain: str
    run: RunInfo
    fit: pd.DataFrame
    anomalies: pd.DataFrame  # classification_anomalies in anomaly_rank order, with export columns added
    overview: dict[str, object]
    summary: pd.DataFrame  # one row per segment, in value order
    segment_order: tuple[str, ...]
    rate_warning: str | None
    stats: Statistics
    profile: DataProfile
    inference: inf.InferenceResult
    resegmentation: Mapping[str, inf.Resegmentation | None]
    models: Models
    recs: tuple[Recommendation, ...]
    dq: DataQualitySummary
    dq_issues: pd.DataFrame  # the full data_quality_issues mart, for the CSV
    dq_groups: pd.DataFrame  # issues grouped by reason
    conflicts: pd.DataFrame
    changes: pd.DataFrame | None  # customer_fit_changes, None when the mart was not provided
    check_warnings: tuple[str, ...]
    checks_href: str | None
    notes: tuple[str, ...]
    sample: AnalysisSample | None = None  # the stated analysis sample (sampling.py); sampled only when large
    extra: Mapping[str, object] = field(default_factory=dict)
    # figures derived from the context once and used by more than one part (the reliability curve: chart and
    # sentence); not part of the context's value
    derived: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    # large data read in bounded memory (steps.report_from): ``fit`` holds only the population's base columns,
    # every other column is read from here when a figure needs it
    population: Population | None = field(default=None, compare=False, repr=False)

    def fit_frame(self, columns: Sequence[str]) -> pd.DataFrame:
        """Every record of the fit mart with at least ``columns`` (``frame_of``)."""
        return frame_of(self.fit, self.population, columns)


def frame_of(fit: pd.DataFrame, population: Population | None, columns: Sequence[str]) -> pd.DataFrame:
    """Every record of the fit mart with at least ``columns``: ``fit`` itself, or on large data read in bounded
    memory the population's base columns and ``columns`` (``Population.frame``)."""
    return frame_with(fit if population is None else population, columns)


def _mart(marts: Mapping[str, pd.DataFrame], key: str, notes: list[str]) -> pd.DataFrame:
    frame = marts.get(key)
    if frame is None:
        notes.append(f"mart {key} was not provided; its section is empty")
        return pd.DataFrame()
    return frame


def _statistics(marts: Mapping[str, pd.DataFrame], fit: pd.DataFrame, config: ReportConfig,
                notes: list[str], population: Population | None = None) -> Statistics:
    mart = _mart(marts, "anomaly_feature_comparison", notes)
    comparison = tables.in_feature_order(feature_comparison(mart), mart)
    crosstabs = _mart(marts, "anomaly_crosstabs", notes)
    features = comparison["feature_name"].tolist()
    if population is None:
        significance = feature_significance(fit, features, config)
    else:  # the feature columns are read for every record a few at a time (``Population.columns_per_read``)
        significance = feature_significance(fit, features, config, frame_of=_grouped_reads(population, features),
                                            available=population.columns)
    return Statistics(
        comparison=comparison,
        significance=significance,
        rules=rule_lift_table(_mart(marts, "anomaly_rule_lift", notes)),
        correlations=value_realization(
            frame_of(fit, population, ("comprehensive_customer_score", "total_revenue")), config),
        cross=crosstab_table(crosstabs),
        associations=crosstab_association(crosstabs, config),
        seasonal=_mart(marts, "seasonal_distribution", notes),
    )


def _grouped_reads(population: Population, features: Sequence[str]) -> Callable[[Sequence[str]], pd.DataFrame]:
    """``frame_of`` for ``feature_significance``: asked for one feature at a time (in ``ordered_features`` order),
    it reads that feature and the next ones together, ``columns_per_read`` at a time, and holds only that read."""
    order = [f for f in ordered_features(features) if f in population.columns]
    held: dict[str, pd.DataFrame] = {}

    def frame_of(columns: Sequence[str]) -> pd.DataFrame:
        feature = columns[0]
        if feature not in held:
            held.clear()
            start = order.index(feature) if feature in order else 0
            group = order[start:start + population.columns_per_read()] if feature in order else [feature]
            read = population.frame(group)
            held.update(dict.fromkeys(group, read))
        return held[feature]

    return frame_of


def submit_clusters(runner: worker.Runner, anomalies: pd.DataFrame, config: ReportConfig,
                    population: pd.DataFrame | Population, sample: AnalysisSample | None = None) -> worker.Handle:
    """The clusters of the anomalies (labels named against ``population``), submitted to ``runner``; in the
    helper process it gets only the anomaly columns it reads and the population's reference figures (always
    when ``population`` is read in bounded memory: its reference is computed a column at a time)."""
    cluster_config = config
    if sample is not None and sample.sampled:  # the K search and KMeans fit on as many anomalies as the sample holds
        cluster_config = replace(config, cluster_fit_sample_size=max(min(config.cluster_rows, sample.anomaly_records),
                                                                      config.k_max + 1))
    if runner.parallel or not isinstance(population, pd.DataFrame):
        records, reference = cluster_inputs(anomalies, population)
        return runner.submit("the anomaly clusters", anomaly_clusters, records, cluster_config, reference)
    return runner.submit("the anomaly clusters", anomaly_clusters, anomalies, cluster_config, population)


def _start_models(fit: pd.DataFrame, clusters: worker.Handle, profile: DataProfile, config: ReportConfig,
                  notes: list[str], population: pd.DataFrame | Population | None = None,
                  sample: AnalysisSample | None = None,
                  runner: worker.Runner | None = None) -> Callable[[], Models]:
    """Clusters of the anomalies (``submit_clusters``) and the decision trees; constant, all-null and identical
    columns are removed before modelling, and the segment-defining (band) feature is kept out of the behavioural
    model. When ``fit`` is the analysis ``sample`` of ``population``, the written-back scores still cover every
    record. Fits what runs in this process; the function returned collects the helper's parts (``runner``)."""
    runner = runner or worker.SerialRunner()
    model_config = replace(
        config,
        extra_excluded_features=tuple(dict.fromkeys(config.extra_excluded_features + profile.redundant_columns)),
        segment_defining_feature=config.segment_defining_feature or profile.band_feature,
    )
    if sample is not None and sample.sampled and sample.cv_repeats is not None:  # fewer CV repeats, stated
        model_config = replace(model_config, cv_repeats=sample.cv_repeats)
    matrix = model_matrix(fit, model_config) if len(fit) else None
    scored = {"population": population, "sample_positions": sample.positions} if sample and sample.sampled else {}
    seg_tree = segment_tree(fit, model_config, matrix)
    finish_anomaly = start_anomaly_models(fit, model_config, matrix, runner=runner, **scored)

    def finish() -> Models:
        anomaly = finish_anomaly()
        models = Models(runner.result(clusters), seg_tree, anomaly)
        for part in (models.clustering, models.seg_tree, models.anomaly):
            if part.skipped:
                notes.append(part.note)
        return models

    return finish


def within_segment(
    fit: pd.DataFrame, marts: Mapping[str, pd.DataFrame], profile: DataProfile, grain: str, config: ReportConfig
) -> tuple[inf.InferenceResult, dict[str, inf.Resegmentation | None]]:
    """Within-segment tests under both grains, and the re-segmentation simulation per dimension. The
    segment-defining (band) feature and redundant columns are left out: inside a band the band feature only
    restates the segment."""
    runner = worker.SerialRunner()
    return runner.result(submit_within_segment(runner, fit, marts, profile, grain, config))


def submit_within_segment(runner: worker.Runner, fit: pd.DataFrame, marts: Mapping[str, pd.DataFrame],
                          profile: DataProfile, grain: str, config: ReportConfig) -> worker.Handle:
    """``within_segment``, submitted to ``runner`` (the report's helper process on large data): it gets the
    records to test and the two small marts it reads, nothing else."""
    rec = marts.get("input_row_reconciliation")
    dropped = 0
    if rec is not None and "dropped_by_grain" in rec.columns and len(rec):
        rows = rec.loc[text_column(rec, "source") == "customers", "dropped_by_grain"]
        dropped = int(pd.to_numeric(rows, errors="coerce").fillna(0).sum())
    excluded = profile.redundant_columns + ((profile.band_feature,) if profile.band_feature else ())
    return runner.submit("the within-segment tests", inf.within_segment_with_resegmentation, fit, grain,
                         other_grain_available=dropped == 0, rule_lift=marts.get("anomaly_rule_lift"),
                         excluded=excluded, random_state=config.random_state)


class _Analyses(NamedTuple):
    inference: inf.InferenceResult
    resegmentation: dict[str, inf.Resegmentation | None]
    models: Models


class _Descriptive(NamedTuple):
    profile: DataProfile
    order: tuple[str, ...]
    summary: pd.DataFrame
    sample: AnalysisSample
    runner: worker.Runner


def _start_analyses(fit: pd.DataFrame, anomalies: pd.DataFrame, marts: Mapping[str, pd.DataFrame], grain: str,
                    config: ReportConfig, notes: list[str], runner: worker.Runner | None, stack: ExitStack,
                    population: Population | None = None) -> tuple[_Descriptive, Callable[[], _Analyses]]:
    """The profile, the sample, the within-segment tests and the models of ``build_context``, in two steps: this
    call computes what this process computes first (the function returned collects the rest).

    On large data (``is_large``) a helper process (the second core; ``python_analysis.worker``) runs the clusters,
    the within-segment tests, the grouped assessment and the calibrated folds while this one fits the trees and
    scores the population: ``runner`` (the caller's, started before the read while this process was small), else
    one started here in ``stack`` (unless ``SEGFIT_REPORT_HELPER=0`` or one core). It gets only what those parts
    read; the caller stops it (``PendingContext.runner``) once it is done with it. Each part is seeded by its own arguments: the results are the
    serial path's.

    With ``population`` (large data read in bounded memory; ``fit`` is then its base columns) the profile is
    computed in SQL, the sample's whole rows are read by key, and the population is scored in chunks: the
    same figures as from the whole fit mart."""
    large = is_large(len(fit), config)
    started = stack.enter_context(worker.side_process(large and runner is None and worker.helper_enabled()))
    if runner is None or not runner.parallel or not large:
        runner = started
    sample = analysis_sample(fit, config)  # the heavy resampling runs on a stated sample when the data is large
    clusters = submit_clusters(runner, anomalies, config, fit if population is None else population, sample)
    profile = data_profile(fit) if population is None else population.profile()
    order = tables.segment_order(frame_of(fit, population, () if profile.band_feature else ("total_revenue",)),
                                 profile)
    summary = tables.in_segment_order(segment_summary(_mart(marts, "segment_retention_summary", notes)), order)
    if population is not None:
        work = population.rows(sample.positions)  # the sample's whole rows (every row when not sampled)
    else:
        work = fit.take(sample.positions).reset_index(drop=True) if sample.sampled else fit
    within = submit_within_segment(runner, work, marts, profile, grain, config)
    finish_models = _start_models(work, clusters, profile, config, notes,
                                  population=fit if population is None else population, sample=sample,
                                  runner=runner)

    def finish() -> _Analyses:
        models = finish_models()
        inference, resegmentation = runner.result(within)
        return _Analyses(inference, resegmentation, models)

    return _Descriptive(profile, order, summary, sample, runner), finish


@dataclass(frozen=True)
class PendingContext:
    """A ``ReportContext`` being computed (``start_context``): what is known while the helper process still runs
    its parts. ``finish()`` collects them and gives the context."""

    config: ReportConfig
    fit: pd.DataFrame
    segment_order: tuple[str, ...]
    summary: pd.DataFrame
    stats: Statistics
    run: RunInfo
    finish: Callable[[], ReportContext]
    runner: worker.Runner  # the helper process (or the serial runner): still running after finish(); close it
    population: Population | None = None  # large data read in bounded memory (``ReportContext.population``)

    def fit_frame(self, columns: Sequence[str]) -> pd.DataFrame:
        return frame_of(self.fit, self.population, columns)


def build_context(
    marts: Mapping[str, pd.DataFrame],
    config: ReportConfig,
    *,
    check_warnings: Sequence[str] = (),
    checks_href: str | None = None,
    dq_summary: pd.DataFrame | None = None,
    grain: str = "all",
    run: RunInfo | None = None,
    runner: worker.Runner | None = None,
    population: Population | None = None,
) -> ReportContext:
    """Compute every statistic and model the report shows. Pure and deterministic. On large data four parts
    run in a helper process (``runner``, else one started here; ``_start_analyses``): the same results."""
    with ExitStack() as stack:
        pending = start_context(marts, config, stack, check_warnings=check_warnings, checks_href=checks_href,
                                dq_summary=dq_summary, grain=grain, run=run, runner=runner, population=population)
        ctx = pending.finish()
        pending.runner.close()  # its parts are done: the helper's memory is returned
        return ctx


def start_context(
    marts: Mapping[str, pd.DataFrame],
    config: ReportConfig,
    stack: ExitStack,
    *,
    check_warnings: Sequence[str] = (),
    checks_href: str | None = None,
    dq_summary: pd.DataFrame | None = None,
    grain: str = "all",
    run: RunInfo | None = None,
    runner: worker.Runner | None = None,
    population: Population | None = None,
) -> PendingContext:
    """``build_context`` in two steps: this process's share first (a helper started here is held by ``stack``);
    the descriptive statistics are computed while the helper still runs, then ``finish()`` collects its parts.
    The caller may draw the data charts in between (``figures.data_figures``).
    ``population``: large data read in bounded memory (``warehouse.population``); ``marts`` then holds its
    base columns as ``customer_segment_fit``.
    Long: the context's fields, computed in two steps and given in one constructor call (#9)."""
    notes: list[str] = []
    fit = _mart(marts, "customer_segment_fit", notes).reset_index(drop=True)
    anomalies = marts.get("classification_anomalies")
    if anomalies is None:
        anomalies = fit[anomaly_mask(fit)]
        notes.append("classification_anomalies not provided: anomalies taken from customer_segment_fit")
    anomalies = anomalies.reset_index(drop=True)
    descriptive, finish_analyses = _start_analyses(fit, anomalies, marts, grain, config, notes, runner, stack,
                                                   population)
    profile, order, summary, sample, used_runner = descriptive
    statistics_notes: list[str] = []  # appended after the models' notes, in the order of the report's sections
    stats = _statistics(marts, fit, config, statistics_notes, population)
    run = run or RunInfo.from_marts(marts, grain=grain)
    dq = data_quality_summary(marts.get("input_row_reconciliation"), marts.get("data_quality_issues"), dq_summary)
    dq_issues = marts.get("data_quality_issues")
    keys = marts.get("duplicate_customer_keys")
    conflicts = conflicting_customers(keys, fit)
    overview = sample_overview(frame_of(fit, population, ("behaviour_source",)), summary, anomalies, grain)

    def finish() -> ReportContext:
        inference, resegmentation, models = finish_analyses()
        return ReportContext(
            config=config,
            grain=grain,
            run=run,
            fit=fit,
            anomalies=tables.anomaly_export(anomalies, models.assignments, keys),
            overview=overview,
            summary=summary,
            segment_order=order,
            rate_warning=text.rate_warning(int(summary["record_count"].sum()), int(summary["anomaly_count"].sum()),
                                           config.anomaly_rate_band),
            stats=stats,
            profile=profile,
            inference=inference,
            resegmentation=resegmentation,
            models=models,
            recs=tuple(recommendations(inference, models.clustering, resegmentation)),
            dq=dq,
            dq_issues=tables.issues_in_order(dq_issues),
            dq_groups=tables.issues_by_reason(dq_issues, dq),
            conflicts=conflicts,
            changes=tables.changes_in_order(marts.get("customer_fit_changes")),
            check_warnings=tuple(check_warnings),
            checks_href=checks_href,
            notes=tuple(notes + statistics_notes),
            sample=sample,
            population=population,
        )

    return PendingContext(config, fit, order, summary, stats, run, finish, used_runner, population)
