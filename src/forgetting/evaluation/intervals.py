"""Means over repetitions with their 95% confidence intervals, and paired comparisons over shared seeds. NumPy and
SciPy only (no TensorFlow), so that ``forgetting diff`` and the report start in well under a second."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats


def ci95(values) -> float:
    """The half-width of the 95% confidence interval of the mean of ``values`` (Student t, n - 1 degrees of
    freedom): t_0.975,n-1 * sd / sqrt(n), with sd the sample standard deviation; NaN for a single value (one
    repetition has no interval)."""
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return math.nan
    return float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))


def half_width(values) -> float | None:
    """``ci95`` as the files hold it: rounded to 6 digits, None (JSON null, an empty CSV cell) where there is no
    interval."""
    half = ci95(values)
    return None if math.isnan(half) else round(half, 6)


NO_INTERVAL = "n/a"  # what the report, the tuner and `forgetting diff` show where there is no interval


def plus_minus(half: float | None, digits: int = 3, space: str = " ") -> str:
    """``± 0.012``, or ``± n/a`` where there is no interval (one repetition)."""
    missing = half is None or math.isnan(half)
    return f"±{space}{NO_INTERVAL if missing else format(half, f'.{digits}f')}"


class Difference(NamedTuple):
    """A paired difference a - b over shared seeds: its mean, the 95% confidence half-width of that mean (NaN for a
    single seed: no interval) and the paired t-test's two-sided p-value (NaN when every difference is the same, or
    there is one seed)."""

    mean: float
    ci95: float
    p: float

    @property
    def verdict(self) -> str:
        """``identical`` (every seed gave the same value), ``real`` (the 95% interval excludes 0), else ``not
        resolved``."""
        if self.ci95 == 0 and self.mean == 0:
            return "identical"
        return "real" if abs(self.mean) > self.ci95 else "not resolved"


def paired_difference(a, b) -> Difference:
    """(mean of a - b, its 95% confidence half-width, the paired t-test's two-sided p-value) over repetitions
    that share their seeds (the same task-A model, data order and initialisation), so seed-to-seed variation
    common to both cancels. p is NaN when every difference is the same."""
    difference = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    p = float(stats.ttest_rel(a, b).pvalue) if len(difference) > 1 and np.ptp(difference) > 0 else float("nan")
    return Difference(float(np.mean(difference)), ci95(difference), p)


def summary(repetitions: dict[str, list[float]]) -> dict[str, float]:
    """Each metric's mean over the repetitions and its 95% confidence half-width, ``<metric>_ci95`` (``ci95``)."""
    result = {}
    for key, values in repetitions.items():
        if key != "seed":
            result[key] = round(float(np.mean(values)), 6)
            result[f"{key}_ci95"] = half_width(values)
    return result
