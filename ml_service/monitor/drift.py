"""Drift statistics, per feature and for the predictions, with scipy.

Numbers: the population stability index over ten quantile bins of the reference (PSI, the credit-risk
industry's measure: below 0.1 stable, above 0.2 a real shift) and the two-sample Kolmogorov-Smirnov
test. Categories (strings, booleans): PSI over the categories and the chi-square test of the two
frequency tables. A column drifted when its PSI is above the threshold and its test rejects "same
distribution" below the p-value: PSI alone flags noise on small windows, a test alone flags
negligible shifts on large ones.

Why scipy and not Evidently, whylogs or NannyML (checked with `pip install --dry-run` into this
environment on 2026-11-26): Evidently 0.7.23 adds 35 packages (litestar, plotly, statsmodels, nltk, and
iterative-telemetry, which phones home), NannyML 0.13.1 adds 37 (xgboost, lightgbm, nvidia-nccl, Google
Cloud storage, segment analytics), whylogs 1.6.4 adds 5 but downgrades platformdirs and computes its
drift from approximate sketches. The tests used here are a few lines over scipy, which scikit-learn
already installs; the HTML report and the MLflow run are ours either way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

EPSILON = 1e-4
BINS = 10


@dataclass
class ColumnDrift:
    """The drift of one column (a feature, or the predictions)."""

    name: str
    kind: str  # numeric | categorical
    psi: float
    test: str  # ks | chi2
    statistic: float
    p_value: float
    drifted: bool
    reference_mean: float | None = None
    current_mean: float | None = None


@dataclass
class DriftResult:
    """Every column's drift, and the verdict."""

    features: list[ColumnDrift] = field(default_factory=list)
    prediction: ColumnDrift | None = None
    reference_rows: int = 0
    current_rows: int = 0

    @property
    def drifted_features(self) -> list[str]:
        """Names of the features that drifted."""
        return [c.name for c in self.features if c.drifted]

    @property
    def drifted(self) -> bool:
        """True when a feature or the predictions drifted."""
        return bool(self.drifted_features) or bool(self.prediction and self.prediction.drifted)


def _numbers(values) -> list[float]:
    out = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out.append(number)
    return out


def is_numeric(values) -> bool:
    """True when every non-empty value reads as a number (booleans are categories)."""
    present = [v for v in values if v is not None and v != ""]
    return bool(present) and not any(isinstance(v, bool) for v in present) and len(_numbers(present)) == len(present)


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index of two shares (same bins): sum (a - e) * ln(a / e)."""
    total = 0.0
    for e, a in zip(expected, actual):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def numeric_drift(name: str, reference, current, psi_threshold: float, p_value: float) -> ColumnDrift:
    """PSI over the reference's quantile bins and the KS test."""
    import numpy as np
    from scipy import stats

    ref, cur = np.asarray(_numbers(reference)), np.asarray(_numbers(current))
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, BINS + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    if len(edges) < 3:  # a (nearly) constant reference: one bin below and one above its value
        middle = float(np.median(ref))
        edges = np.array([-np.inf, middle, np.nextafter(middle, np.inf), np.inf])
    shares = [np.histogram(values, bins=edges)[0] / max(len(values), 1) for values in (ref, cur)]
    index = float(psi(list(shares[0]), list(shares[1])))
    test = stats.ks_2samp(ref, cur)
    return ColumnDrift(name, "numeric", index, "ks", float(test.statistic), float(test.pvalue),
                       bool(index > psi_threshold and test.pvalue < p_value), float(ref.mean()), float(cur.mean()))


def categorical_drift(name: str, reference, current, psi_threshold: float, p_value: float) -> ColumnDrift:
    """PSI over the categories and the chi-square test of the frequency table."""
    from collections import Counter

    from scipy import stats

    ref, cur = Counter(str(v) for v in reference), Counter(str(v) for v in current)
    categories = sorted(set(ref) | set(cur))
    ref_total, cur_total = max(sum(ref.values()), 1), max(sum(cur.values()), 1)
    index = psi([ref[c] / ref_total for c in categories], [cur[c] / cur_total for c in categories])
    if len(categories) < 2:
        return ColumnDrift(name, "categorical", index, "chi2", 0.0, 1.0, False)
    table = [[ref[c] + 0.5 for c in categories], [cur[c] + 0.5 for c in categories]]  # no empty cell
    statistic, p, _, _ = stats.chi2_contingency(table)
    return ColumnDrift(name, "categorical", index, "chi2", float(statistic), float(p),
                       bool(index > psi_threshold and p < p_value))


def column_drift(name: str, reference, current, psi_threshold: float, p_value: float) -> ColumnDrift:
    """Numeric or categorical drift, by what the reference holds."""
    if is_numeric(reference):
        return numeric_drift(name, reference, current, psi_threshold, p_value)
    return categorical_drift(name, reference, current, psi_threshold, p_value)


def compare(features: list[str], reference_columns: dict[str, list], current_rows: list[list],
            reference_predictions: list, current_predictions: list, psi_threshold: float,
            p_value: float) -> DriftResult:
    """Drift of every feature (current rows are in feature order) and of the predictions."""
    result = DriftResult(reference_rows=len(next(iter(reference_columns.values()), [])),
                         current_rows=len(current_rows))
    for index, name in enumerate(features):
        current = [row[index] for row in current_rows if len(row) > index and row[index] is not None]
        reference = [v for v in reference_columns[name] if v is not None and v != ""]
        result.features.append(column_drift(name, reference, current, psi_threshold, p_value))
    current = [p for p in current_predictions if p is not None]
    if reference_predictions and current:  # collected records may hold no predictions: then there is no sample
        result.prediction = column_drift("prediction", reference_predictions, current, psi_threshold, p_value)
    return result
