"""Figures over seeds for the benchmarks that compare two sides seed by seed (``vs_lightly.py``,
``precision_accuracy.py``): one home for the mean, the spread and the paired interval."""

from __future__ import annotations

import math
import statistics


def mean_std(values: list[float]) -> dict:
    """Mean and sample standard deviation (0.0 for one value)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def paired(differences: list[float]) -> dict:
    """Mean, standard deviation and 95% interval (Student's t) of paired per-seed differences (NaN
    spread and interval for one seed)."""
    from scipy import stats

    n, mean = len(differences), statistics.fmean(differences)
    sd = statistics.stdev(differences) if n > 1 else float("nan")
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    return {"per_seed": differences, "mean": mean, "std": sd, "ci95": [mean - half, mean + half]}
