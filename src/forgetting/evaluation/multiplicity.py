"""Corrections for testing many hypotheses at once (the report's all-pairs table). Standard library only: SciPy has
no Holm, and the report must not wait on a statistics package's import."""

from __future__ import annotations

import math


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` for testing them all at once (Holm 1979): with the m finite
    p-values sorted, p_(1) <= ... <= p_(m), the adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)). A
    hypothesis is rejected at level alpha where its adjusted p < alpha, which keeps the chance of any false
    rejection among the m at most alpha. NaN (no test: identical values, one seed) stays NaN and does not count in m.
    (SciPy has no Holm; statsmodels' ``multipletests(method="holm")`` computes the same.)"""
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted, running = [math.nan] * len(p_values), 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted
