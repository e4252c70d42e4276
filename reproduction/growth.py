"""The data-size experiment judged by the reproduction's one rule (`assess`): does transfer grow with training data?

At each size n (training images per side) the experiment trains seeds of random-init targets on d1 and surrogates
on d2, and scores every surrogate's adversarial and control images on every target of the same n, all on the same
test images. A size's level is the mean over its seed pairs of the target's relative AUC (adversarial over clean).
Growth from the smallest size n0 to a size n is the paired difference

    d_n = mean relative AUC at n - mean relative AUC at n0,

its interval a bootstrap of the same resamples of test images (patients where splits are patient-level) applied to
every pair of both sizes; the claim is d < 0. The sizes above n0 are one finding's comparisons: Holm across them;
the reference arm is the larger size's attackers (the mean over pairs of control minus adversarial AUC, lower 95%
bound above 0), the smaller size's the other arm, so the outcome reads as every finding's does. A size with fewer
than `MIN_PAIRS` seed pairs is not testable: one pair's interval holds the test images' sampling only, not the
spread between training seeds. Every size is read at one ε, the largest of the grid at which every surrogate's
images keep a mean SSIM of at least `SSIM_BUDGET` (`budget_epsilon`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from medaudit.core.metrics import Interval, auc, bootstrap_aucs, resample_counts
from reproduction.assess import VERDICT_RESAMPLES, VERDICT_SEED, Arm, Assessment, Claim, Comparison, IntervalAt, assess

MIN_PAIRS = 3  # seed pairs a size needs before its spread between training seeds is in its interval
SSIM_BUDGET = 0.8  # the perceptibility bound: mean SSIM of the adversarial images at least this
ARM_CONFIDENCE = 0.95  # an arm beats its control as every audit's cell does, at 95 %
GROWTH = Claim("below", 0.0, measure="mean relative AUC over seed pairs at n minus at the smallest n")


@dataclass(frozen=True)
class Pair:
    """One surrogate seed's images scored on one target seed, at the size's ε."""

    clean: np.ndarray  # (N,) the target's scores on the clean test images
    adversarial: np.ndarray  # (N,) on the surrogate's adversarial images
    control: np.ndarray  # (N,) on the control images (the adversarial perturbation, pixels shuffled)


@dataclass(frozen=True)
class SizePoint:
    """One size of the curve: its seed pairs and what the reader needs to weigh it (the confounds of size)."""

    n_images: int  # training images per side (the targets')
    pairs: tuple[Pair, ...]
    surrogate_clean_auc: tuple[float, ...]  # per surrogate seed, its clean test AUC
    epochs: tuple[int, ...]  # per model (targets then surrogates), the epochs it trained to its plateau


def budget_epsilon(ssim: Mapping[float, Sequence[float]], budget: float = SSIM_BUDGET) -> float | None:
    """The largest ε at which every surrogate's images keep mean SSIM >= `budget` (`ssim`: ε -> each surrogate's
    mean SSIM at it, every size's surrogates together); None when no ε of the grid does."""
    inside = [eps for eps, values in ssim.items() if values and min(values) >= budget]
    return max(inside) if inside else None


def _interval(point: float, values: np.ndarray, confidence: float) -> Interval:
    """The percentile interval of the resampled `values`; resamples without both classes (nan) are counted."""
    finite = values[np.isfinite(values)]
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(finite, [tail, 100 - tail]) if finite.size else (np.nan, np.nan)
    return Interval(point, float(low), float(high), confidence, values.size, values.size - finite.size)


def _level(y: np.ndarray, pairs: Sequence[Pair], counts: np.ndarray) -> tuple[float, np.ndarray]:
    """(point, per resample) of the mean over pairs of relative AUC."""
    point = float(np.mean([auc(y, p.adversarial) / auc(y, p.clean) for p in pairs]))
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = np.mean(
            [bootstrap_aucs(y, p.adversarial, counts) / bootstrap_aucs(y, p.clean, counts) for p in pairs], axis=0
        )
    return point, resampled


def _drop(y: np.ndarray, pairs: Sequence[Pair], counts: np.ndarray) -> Interval:
    """The mean over pairs of control minus adversarial AUC on the targets, at `ARM_CONFIDENCE`."""
    point = float(np.mean([auc(y, p.control) - auc(y, p.adversarial) for p in pairs]))
    resampled = np.mean(
        [bootstrap_aucs(y, p.control, counts) - bootstrap_aucs(y, p.adversarial, counts) for p in pairs], 0
    )
    return _interval(point, resampled, ARM_CONFIDENCE)


def _difference(point: float, resampled: np.ndarray) -> IntervalAt:
    return lambda confidence: _interval(point, resampled, confidence)


def comparisons(y: np.ndarray, groups: np.ndarray | None, points: Sequence[SizePoint], eps: float) -> list[Comparison]:
    """Each size above the smallest against the smallest, on the same resamples of the same test images."""
    ordered = sorted(points, key=lambda p: p.n_images)
    counts = resample_counts(len(y), resamples=VERDICT_RESAMPLES, seed=VERDICT_SEED, groups=groups)
    base = ordered[0]
    out = []
    for point in ordered[1:]:
        label = f"n {point.n_images:,} − n {base.n_images:,}"
        short = [f"n {p.n_images:,}: {len(p.pairs)} pairs" for p in (point, base) if len(p.pairs) < MIN_PAIRS]
        if short:
            out.append(Comparison(label, None, (f"fewer than {MIN_PAIRS} seed pairs ({', '.join(short)})",)))
            continue
        (hi, hi_resampled), (lo, lo_resampled) = _level(y, point.pairs, counts), _level(y, base.pairs, counts)
        at = _difference(hi - lo, hi_resampled - lo_resampled)
        arms = tuple(Arm(f"n {q.n_images:,} ε {eps:g}", _drop(y, q.pairs, counts), eps=eps) for q in (point, base))
        out.append(Comparison(label, at, arms=arms, eps=(eps, eps)))
    return out


def judge(y: np.ndarray, groups: np.ndarray | None, points: Sequence[SizePoint], eps: float) -> Assessment:
    """The curve under the one rule: Holm across the sizes, the outcome as every finding's."""
    return assess(comparisons(y, groups, points, eps), GROWTH)


def reading(a: Assessment, points: Sequence[SizePoint], eps: float) -> str:
    """One sentence: what the curve supports at ε."""
    sizes = sorted(p.n_images for p in points)
    span = f"from {sizes[0]:,} to {sizes[-1]:,} images per side at ε {eps:g}"
    decided = [j.label for j in a.decided("supports")]
    if a.outcome == "holds":
        larger = len(points) - 1
        where = "every larger size" if len(decided) == larger else ", ".join(decided)
        return f"Transfer grows with data {span}: relative AUC falls below the smallest size's at {where}."
    if a.outcome == "does not hold":
        return f"Transfer shrinks with data {span}: relative AUC rises above the smallest size's at every decided size."
    if a.outcome == "mixed":
        return f"Transfer does not move one way with data {span}: some sizes lie below the smallest, some above."
    if a.outcome == "cannot be told apart":
        width = max(j.interval.high - j.interval.low for j in a.judged if j.interval)
        return (
            f"The curve supports only that any change of transfer {span} is smaller than these test images resolve "
            f"(widest interval {width:.3f} relative AUC)."
        )
    if a.outcome == "no transfer to compare":
        return f"The curve supports only that no larger size's attackers beat their control {span}."
    return f"The curve cannot be read {span}: {'; '.join(a.reasons)}."
