"""Typed, frozen configuration for the segfit report (one object, passed everywhere)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Behaviour features (numeric) available in ``customer_segment_fit``; nothing here is derived from retention.
BEHAVIOUR_NUMERIC: tuple[str, ...] = (
    "total_revenue",
    "net_profit",
    "transaction_count",
    "avg_transactions_per_month",
    "transaction_value_volatility",
    "q1_transactions",
    "q2_transactions",
    "q3_transactions",
    "q4_transactions",
    "customer_age_days",
    "comprehensive_customer_score",
    "q1_share",
    "q2_share",
    "q3_share",
    "q4_share",
    "seasonality_std",
    "seasonality_imbalance",
    "seasonality_entropy_norm",
    "seasonality_cv",
    "months_active",
    "expected_transactions",
    "txn_consistency_ratio",
    "txn_consistency_error",
    "quarterly_coverage_gap",
    "quarterly_coverage_gap_ratio",
    "revenue_per_score",
    "value_mismatch_z",
)

# Behaviour categoricals (segment dimensions that are not the segment itself).
BEHAVIOUR_CATEGORICAL: tuple[str, ...] = ("lifecycle_stage", "seasonal_preference")

# Columns that are the retention target or derived from it (they define the anomaly label).
RETENTION_DERIVED_NUMERIC: tuple[str, ...] = (
    "retention_probability",
    "segment_avg_retention",
    "retention_deviation",
    "abs_retention_deviation",
    "anomaly_threshold",
)
RETENTION_DERIVED_CATEGORICAL: tuple[str, ...] = ("deviation_direction", "anomaly_threshold_mode")

CLUSTER_FEATURES: tuple[str, ...] = (
    "txn_consistency_error",
    "transaction_value_volatility",
    "seasonality_std",
    "seasonality_imbalance",
    "seasonality_entropy_norm",
    "avg_transactions_per_month",
    "transaction_count",
    "total_revenue",
)

# Feature families used by the recommendations.
STABILITY_FEATURES: tuple[str, ...] = (
    "transaction_value_volatility",
    "txn_consistency_error",
    "txn_consistency_ratio",
    "quarterly_coverage_gap_ratio",
    "avg_transactions_per_month",
    "transaction_count",
)
SEASONALITY_FEATURES: tuple[str, ...] = (
    "q1_share",
    "q2_share",
    "q3_share",
    "q4_share",
    "seasonality_std",
    "seasonality_imbalance",
    "seasonality_entropy_norm",
    "seasonality_cv",
)
LIFECYCLE_FEATURES: tuple[str, ...] = ("customer_age_days",)
VALUE_FEATURES: tuple[str, ...] = (
    "revenue_per_score",
    "value_mismatch_z",
    "total_revenue",
    "net_profit",
    "comprehensive_customer_score",
)


@dataclass(frozen=True)
class ReportConfig:
    """Every knob of the report. Defaults are what the CLI uses."""

    random_state: int = 0
    # decision trees
    max_depth: int = 5
    min_samples_leaf: int = 1
    class_weight: str | None = "balanced"  # anomaly models: anomalies are rare, so weight classes equally
    cv_folds: int = 5
    cv_repeats: int = 10  # repeated stratified k-fold grouped by customer_id, for mean +- SD of the CV scores
    repeated_cv_sample_size: int = 4000  # records (whole customers) used by the repeated grouped CV
    top_importances: int = 10
    tree_plot_depth: int = 3
    threshold_importance: float = 0.6  # one feature >= this share of importance -> "close to a threshold"
    leak_importance: float = 0.9  # one feature >= this share -> leakage flag
    leak_auc: float = 0.99  # CV ROC-AUC >= this -> leakage flag
    max_categories: int = 20  # one-hot levels kept per categorical column (rest -> '(other)')
    # clustering
    k_min: int = 2
    k_max: int = 6
    fixed_k: int | None = None
    n_init: int = 10
    silhouette_sample_size: int = 3000
    label_min_z_gap: float = 0.5  # |median z (cluster) - median z (rest)| needed to name a feature in a label
    label_max_terms: int = 3
    # statistics
    alpha_large: float = 0.01
    alpha_noise: float = 0.05
    effect_large: float = 0.3  # |rank-biserial| for a "large" difference
    cramers_v_large: float = 0.1  # crosstab association strength considered meaningful
    # sampling bounds (performance)
    plot_sample_size: int = 20000
    fit_sample_size: int = 200000  # upper bound on rows used to fit any tree / KMeans
    tree_fit_sample_size: int = 40000  # rows for the reported (in-sample) trees; min with fit_sample_size
    cluster_fit_sample_size: int = 10000  # rows for the K search / KMeans fit; min with fit_sample_size
    cv_fit_sample_size: int = 15000  # training rows per CV fold (out-of-fold predictions cover every row)
    stat_sample_size: int = 100000  # rows per group for Mann-Whitney and correlations
    # above this many records, the heavy resampling (within-segment tests, re-segmentation, every tree and its
    # CV) runs on a stratified sample of whole customers of about analysis_sample_size records (sampling.py)
    analysis_sample_threshold: int = 50000
    analysis_sample_size: int = 10000
    # repeats of the repeated grouped CV when the data is sampled (at most cv_repeats; small data keeps cv_repeats)
    sampled_cv_repeats: int = 3
    # anomaly rate band considered plausible for a segmentation review (outside -> warning in report)
    anomaly_rate_band: tuple[float, float] = (0.02, 0.30)
    top_anomalies: int = 20
    # output
    dpi: int = 100
    figure_size: tuple[float, float] = (8.0, 5.0)
    tree_figure_size: tuple[float, float] = (16.0, 8.0)
    extra_excluded_features: tuple[str, ...] = field(default_factory=tuple)
    # the feature whose per-segment ranges do not overlap (data profile): left out of the behavioural model
    segment_defining_feature: str | None = None

    def __post_init__(self) -> None:
        if self.k_min < 2:
            raise ValueError("k_min must be >= 2")
        if self.k_max < self.k_min:
            raise ValueError("k_max must be >= k_min")
        if self.fixed_k is not None and self.fixed_k < 2:
            raise ValueError("fixed_k must be >= 2")
        if self.n_init < 1 or self.cv_folds < 2 or self.max_depth < 1:
            raise ValueError("n_init >= 1, cv_folds >= 2 and max_depth >= 1 are required")
        if not 1 <= self.analysis_sample_size <= self.analysis_sample_threshold:
            raise ValueError("1 <= analysis_sample_size <= analysis_sample_threshold is required")
        lo, hi = self.anomaly_rate_band
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError("anomaly_rate_band must satisfy 0 <= low <= high <= 1")

    @property
    def tree_rows(self) -> int:
        """Rows used to fit each reported decision tree."""
        return min(self.fit_sample_size, self.tree_fit_sample_size)

    @property
    def cluster_rows(self) -> int:
        """Rows used to fit KMeans (every anomaly record is then assigned with ``predict``)."""
        return min(self.fit_sample_size, self.cluster_fit_sample_size)

    @property
    def cv_rows(self) -> int:
        """Training rows per cross-validation fold."""
        return min(self.fit_sample_size, self.cv_fit_sample_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
