"""The breaking epsilon (epsilon*): the smallest perturbation at which an attacker breaks an acceptance criterion.

A criterion's value is measured at a grid of epsilons; at epsilon 0 it is its clean value (relative AUC 1,
adversarial-specific drop 0). Between grid points it is interpolated linearly, and epsilon* is the first epsilon
where it crosses the threshold. On each bootstrap resample the same is done, and the interval is the percentile
interval of those crossings; a resample that never crosses within the grid counts as beyond the largest epsilon
tried, so the interval's high end can be "more than the largest epsilon tried". Pure functions on arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Crossing:
    """epsilon* with its interval; None where it lies beyond the grid (or, for `low`, no resample crosses)."""

    point: float | None
    low: float | None
    high: float | None


def crossing(epsilons: np.ndarray, values: np.ndarray, threshold: float, at_least: bool, start: float) -> np.ndarray:
    """The smallest epsilon at which `values` (..., E), measured at increasing `epsilons` (E,) and equal to `start`
    at epsilon 0, stops meeting `threshold` (value >= threshold when `at_least`, else value <= threshold), by linear
    interpolation; inf where it meets it over the whole grid, nan where a value of the curve is nan."""
    eps = np.concatenate([[0.0], np.asarray(epsilons, dtype=np.float64)])
    v = np.asarray(values, dtype=np.float64)
    v = np.concatenate([np.full(v.shape[:-1] + (1,), float(start)), v], axis=-1)
    margin = v - threshold if at_least else threshold - v  # >= 0: the criterion holds
    fails = margin < 0
    first = np.argmax(fails, axis=-1)  # first failing grid point (0 when none fails: masked below)
    never = ~fails.any(axis=-1)
    i = np.maximum(first, 1)
    m0 = np.take_along_axis(margin, (i - 1)[..., None], -1)[..., 0]
    m1 = np.take_along_axis(margin, i[..., None], -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = eps[i - 1] + (eps[i] - eps[i - 1]) * m0 / (m0 - m1)
    out = np.where(first == 0, 0.0, out)  # fails already at epsilon 0
    out = np.where(never, np.inf, out)
    return np.where(np.isnan(v).any(axis=-1), np.nan, out)  # an undefined value (one-class resample): unknown


def breaking_epsilon(
    epsilons: np.ndarray,
    point_values: np.ndarray,
    resampled_values: np.ndarray,
    *,
    threshold: float,
    at_least: bool,
    start: float,
    confidence: float,
) -> Crossing:
    """epsilon* of one attacker for one criterion: from the point curve (E,), with the percentile interval of the
    resampled curves' crossings (B, E); resamples whose curve is undefined are left out."""
    point = float(crossing(epsilons, point_values, threshold, at_least, start))
    crossings = crossing(epsilons, resampled_values, threshold, at_least, start)
    crossings = crossings[~np.isnan(crossings)]
    if crossings.size == 0:
        return Crossing(_finite(point), None, None)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(crossings, [tail, 1.0 - tail], method="inverted_cdf")
    return Crossing(_finite(point), _finite(low), _finite(high))


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
