"""The breaking epsilon (epsilon*): the smallest measured perturbation at which an attacker breaks a criterion.

A criterion's value is measured at a set of epsilons (the grid, then the bisection's points); at epsilon 0 it is
its clean value (relative AUC 1, adversarial-specific drop 0). epsilon* is the smallest measured epsilon at which
the criterion no longer holds, and its bracket's low end the largest measured epsilon below it at which it holds
(0, the clean image, when none does): nothing between measured points is assumed. On each bootstrap resample the
same is done, and the interval is the percentile interval of those crossings; a resample that never breaks counts
as beyond the largest epsilon measured, so the interval's high end can be "more than the largest measured".

The bisection (`midpoint`, `stop`) narrows the bracket of an attacker that may set its tier's epsilon*: geometric
midpoints (halving from 0), whole grey levels under 8-bit delivery, until the bracket is within
`BRACKET_PRECISION`, the bootstrap cannot tell its ends apart, one grey level separates them, or the float floor
is reached. The stop rule's spread is the width of the resamples' crossings interpolated linearly between measured
points (`crossing`): a continuous estimate of the statistical uncertainty, used only to stop. Pure functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BRACKET_PRECISION = 0.10  # the bisection stops when its bracket is narrower than this share of its upper end
FLOAT_FLOOR_PM1 = 1e-5  # float delivery: no bisection below this epsilon (0.0013 grey levels)
GREY_SLACK = 1e-6  # epsilons this close to a whole number of grey levels are that number


@dataclass(frozen=True)
class Crossing:
    """epsilon* with its bracket and interval; None where it lies beyond every measured epsilon (or, for `low`,
    no resample breaks)."""

    point: float | None
    holds_at: float | None  # the largest measured epsilon below `point` where the criterion holds; 0: clean
    low: float | None
    high: float | None
    spread: float  # width of the interpolated resample crossings' interval (inf where it is open-ended)


def _with_start(epsilons, values, start: float) -> tuple[np.ndarray, np.ndarray]:
    eps = np.concatenate([[0.0], np.asarray(epsilons, dtype=np.float64)])
    v = np.asarray(values, dtype=np.float64)
    return eps, np.concatenate([np.full(v.shape[:-1] + (1,), float(start)), v], axis=-1)


def first_break(epsilons: np.ndarray, values: np.ndarray, threshold: float, at_least: bool, start: float) -> np.ndarray:
    """The smallest of increasing `epsilons` (E,) at which `values` (..., E) stop meeting `threshold` (value >=
    threshold when `at_least`, else value <= threshold); 0 where the clean value `start` already fails, inf where
    every value meets it, nan where a value is nan."""
    eps, v = _with_start(epsilons, values, start)
    fails = (v < threshold) if at_least else (v > threshold)
    out = np.where(fails.any(axis=-1), eps[np.argmax(fails, axis=-1)], np.inf)
    return np.where(np.isnan(v).any(axis=-1), np.nan, out)


def crossing(epsilons: np.ndarray, values: np.ndarray, threshold: float, at_least: bool, start: float) -> np.ndarray:
    """Where `values` would cross `threshold` if the curve were straight between measured points, from `start` at
    epsilon 0: the bisection's stop rule only; inf where it never fails, nan where a value is nan."""
    eps, v = _with_start(epsilons, values, start)
    margin = v - threshold if at_least else threshold - v  # >= 0: the criterion holds
    fails = margin < 0
    first = np.argmax(fails, axis=-1)  # first failing point (0 when none fails: masked below)
    never = ~fails.any(axis=-1)
    i = np.maximum(first, 1)
    m0 = np.take_along_axis(margin, (i - 1)[..., None], -1)[..., 0]
    m1 = np.take_along_axis(margin, i[..., None], -1)[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = eps[i - 1] + (eps[i] - eps[i - 1]) * m0 / (m0 - m1)
    out = np.where(first == 0, 0.0, out)  # fails already at epsilon 0
    out = np.where(never, np.inf, out)
    return np.where(np.isnan(v).any(axis=-1), np.nan, out)


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
    """epsilon* of one attacker for one criterion from its measured points (E,) at increasing `epsilons`, with the
    percentile interval of the resampled curves' (B, E) breaks; resamples whose curve is undefined are left out."""
    eps = np.asarray(epsilons, dtype=np.float64)
    point = float(first_break(eps, point_values, threshold, at_least, start))
    holds_at = float(max([0.0, *eps[eps < point]])) if np.isfinite(point) else None
    tail = (1.0 - confidence) / 2.0
    breaks = first_break(eps, resampled_values, threshold, at_least, start)
    breaks = breaks[~np.isnan(breaks)]
    straight = crossing(eps, resampled_values, threshold, at_least, start)
    straight = straight[~np.isnan(straight)]
    if breaks.size == 0:
        return Crossing(_finite(point), holds_at, None, None, math.inf)
    low, high = np.quantile(breaks, [tail, 1.0 - tail], method="inverted_cdf")
    s_low, s_high = np.quantile(straight, [tail, 1.0 - tail], method="inverted_cdf")
    spread = float(s_high - s_low) if np.isfinite(s_high) else math.inf
    return Crossing(_finite(point), holds_at, _finite(low), _finite(high), spread)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def midpoint(holds_at: float, breaks_at: float, grey_level_pm1: float | None) -> float | None:
    """The next epsilon to measure inside (holds_at, breaks_at): their geometric mean, half of `breaks_at` from 0;
    under 8-bit delivery (`grey_level_pm1`, one grey level) the nearest whole number of grey levels strictly inside,
    None where there is none."""
    m = breaks_at / 2 if holds_at <= 0 else math.sqrt(holds_at * breaks_at)
    if grey_level_pm1 is None:
        return m
    low, high = holds_at / grey_level_pm1, breaks_at / grey_level_pm1
    levels = min(max(round(m / grey_level_pm1), math.floor(low + GREY_SLACK) + 1), math.ceil(high - GREY_SLACK) - 1)
    return levels * grey_level_pm1 if low + GREY_SLACK < levels < high - GREY_SLACK else None


def stop(c: Crossing, grey_level_pm1: float | None) -> str | None:
    """Why the bisection of this crossing is over (a `records.SearchStop`), or None while it should go on."""
    if c.point is None:
        return "holds at every ε measured"
    if c.point - c.holds_at <= BRACKET_PRECISION * c.point:
        return "bracket within 10%"
    if grey_level_pm1 is not None and midpoint(c.holds_at, c.point, grey_level_pm1) is None:
        return "one grey level apart"
    if grey_level_pm1 is None and c.point <= FLOAT_FLOOR_PM1:
        return "float floor"
    if c.spread > c.point - c.holds_at:
        return "interval wider than the bracket"
    return None
