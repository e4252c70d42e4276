"""Each arm's measured ε* and the ratio of two arms' ε*, the paper-free effect size: pure functions, no files.

An arm's ε* is the audit's own (`medaudit.judging.breaking_epsilon.first_break`): the smallest ε the run measured
at which the target's relative AUC under the arm's attacker falls below `RELATIVE_AUC` (0 were the clean image
below it, which a relative AUC of 1 never is); nothing between grid points is assumed. An arm that holds at every
ε measured has ε* beyond its largest ε (`None`, written `>` that ε). The audit's bisection narrows only the
attacker that sets its tier's ε*, so the reproduction reads every arm on its run's grid alone.

The ratio is the reference arm's ε* over the other's (below 1: the reference arm breaks the target with less).
Its interval is the percentile interval of the same ratio on paired resamples of the images (or patients): both
arms' curves are resampled with one seed on the same images and a resample's ε* is its curve's first break. An arm
that never breaks within its grid counts at its grid's largest ε, so the ratio is then a bound on the true one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medaudit.core.metrics import bootstrap_curves
from medaudit.judging.breaking_epsilon import first_break

RELATIVE_AUC = 0.8  # the criterion each arm's ε* is read for: relative AUC under attack at least 0.8
RATIO_CONFIDENCE = 0.95  # the ratio's percentile interval
RESAMPLES = 1000  # paired resamples per ratio (a report of an effect size, not a Holm decision)
SEED = 0  # one seed for every arm: arms on the same images share their resamples


@dataclass(frozen=True)
class ArmEpsilon:
    """One arm's ε* on its run's grid, and its ε* on each paired resample (inf: never breaks there)."""

    point: float | None  # None: relative AUC stays at or above `RELATIVE_AUC` at every ε measured
    largest_pm1: float  # the largest ε measured
    resampled: np.ndarray  # (RESAMPLES,) first break per resample; inf where it never breaks, nan where undefined

    def text(self) -> str:
        """`0.02`, or `>0.03` where it holds at every ε measured."""
        return f">{self.largest_pm1:.3g}" if self.point is None else f"{self.point:.3g}"


def arm_epsilon(
    y: np.ndarray,
    groups: np.ndarray | None,
    clean: np.ndarray,
    epsilons: list[float],
    adversarial: list[np.ndarray],
    controls: list[np.ndarray],
) -> ArmEpsilon:
    """ε* of one arm from its adversarial (and control) scores at each of its increasing `epsilons`."""
    curves = bootstrap_curves(y, clean, adversarial, controls, resamples=RESAMPLES, seed=SEED, groups=groups)
    eps = np.asarray(epsilons, dtype=np.float64)
    point = float(first_break(eps, curves.relative_auc, RELATIVE_AUC, at_least=True, start=1.0))
    resampled = first_break(eps, curves.resampled_relative_auc, RELATIVE_AUC, at_least=True, start=1.0)
    return ArmEpsilon(point if math.isfinite(point) else None, float(eps[-1]), resampled)


@dataclass(frozen=True)
class Ratio:
    """The reference arm's ε* over the other's, with its percentile interval over paired resamples."""

    point: float | None  # None: neither arm breaks within its grid
    bound: str  # "" a measured ratio; "<" or ">" where one arm's ε* lies beyond its grid (then a bound)
    low: float
    high: float

    def text(self) -> str:
        """`÷0.5 (0.33–1)`, or `÷<0.67 (0.33–0.67)` where one arm holds on its grid; empty where neither breaks."""
        if self.point is None:
            return ""
        return f"÷{self.bound}{self.point:.2g} ({self.low:.2g}–{self.high:.2g})"


def _capped(star: np.ndarray, largest: float) -> np.ndarray:
    return np.where(np.isinf(star), largest, star)


def ratio(reference: ArmEpsilon, other: ArmEpsilon) -> Ratio:
    """reference ε* / other ε*. An arm that holds on its whole grid counts at its largest ε, so the ratio is a
    bound (`<` when the other arm holds, `>` when the reference does), and so is each resample's; a resample in
    which both arms hold says nothing and is left out."""
    if reference.point is None and other.point is None:
        return Ratio(None, "", math.nan, math.nan)
    bound = "<" if other.point is None else ">" if reference.point is None else ""
    point = (reference.point or reference.largest_pm1) / (other.point or other.largest_pm1)
    a, b = reference.resampled, other.resampled
    r = _capped(a, reference.largest_pm1) / _capped(b, other.largest_pm1)
    r = r[~(np.isinf(a) & np.isinf(b)) & ~np.isnan(r)]
    tail = (1.0 - RATIO_CONFIDENCE) / 2.0
    low, high = np.quantile(r, [tail, 1.0 - tail], method="inverted_cdf") if r.size else (math.nan, math.nan)
    return Ratio(point, bound, float(low), float(high))
