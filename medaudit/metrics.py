"""Audit metrics: pure functions on numpy arrays, each with a defined answer on degenerate input.

AUC values lie in [0, 1] (nan where undefined: one label value only). Bootstrap intervals are
percentile intervals (Efron & Tibshirani 1993, ch. 13) over images, or over patients when
`groups` is given (cluster bootstrap); undefined resamples are excluded and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.metrics import structural_similarity
from sklearn.metrics import roc_auc_score

from medaudit.errors import AuditInputError


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval."""

    point: float
    low: float  # lower percentile bound, nan when every resample is degenerate
    high: float  # upper percentile bound, nan when every resample is degenerate
    confidence: float  # e.g. 0.95
    resamples: int  # resamples drawn
    degenerate: int  # resamples where the statistic was undefined -> excluded from the bounds


@dataclass(frozen=True)
class PairedAUC:
    """Clean / adversarial / control AUC of one cell, bootstrapped on the same resamples."""

    clean: Interval
    adversarial: Interval
    control: Interval
    relative: Interval  # adversarial / clean
    relative_control: Interval  # control / clean
    adversarial_specific_drop: Interval  # control - adversarial


def _labels_scores(y_true, scores, *, name: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim not in (1, 2) or y.shape != s.shape or y.shape[0] == 0:
        raise AuditInputError(
            f"y_true has shape {y.shape} and {name} has shape {s.shape}; both must be (N,) or (N, K) with N >= 1"
        )
    if not np.isin(y, (0, 1)).all():
        raise AuditInputError("y_true: labels must be 0/1 indicators; encode classes as 0/1")
    if not np.isfinite(s).all():
        raise AuditInputError(f"{name}: contains nan or inf; the model must output finite scores")
    return y.astype(np.int8), s


def _column_auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if 0 < y.sum() < y.size else float("nan")


def per_class_auc(y_true: np.ndarray, scores: np.ndarray) -> list[float]:
    """ROC AUC per class in [0, 1] (sklearn); (N,) -> [auc], (N, K) -> K values, nan for a
    class whose labels hold one value only."""
    y, s = _labels_scores(y_true, scores)
    if y.ndim == 1:
        return [_column_auc(y, s)]
    return [_column_auc(y[:, k], s[:, k]) for k in range(y.shape[1])]


def auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC in [0, 1]: binary (N,), or the one-vs-rest mean over the defined classes of (N, K)
    indicators; nan when no class has both label values."""
    per_class = np.array(per_class_auc(y_true, scores))
    defined = per_class[np.isfinite(per_class)]
    return float(defined.mean()) if defined.size else float("nan")


def resample_counts(n_images: int, *, resamples: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Bootstrap resamples as multiplicities, int (resamples, n_images): how often each image is
    drawn. With `groups` (one id per image) whole groups are drawn, so a group's images share one
    multiplicity (cluster bootstrap over patients)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        inverse, n_units = np.arange(n_images), n_images
    else:
        groups = np.asarray(groups)
        if groups.shape != (n_images,):
            raise AuditInputError(f"groups has shape {groups.shape}; it needs one patient id per image ({n_images},)")
        _, inverse = np.unique(groups, return_inverse=True)
        n_units = int(inverse.max()) + 1
    drawn = rng.integers(0, n_units, size=(resamples, n_units))
    flat = (drawn + n_units * np.arange(resamples)[:, None]).ravel()
    unit_counts = np.bincount(flat, minlength=resamples * n_units).reshape(resamples, n_units)
    return unit_counts[:, inverse.ravel()]


def _resampled_column_aucs(y: np.ndarray, s: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC of one class on every resample at once, ties counted one half."""
    order = np.argsort(s, kind="stable")
    s_sorted, positive = s[order], y[order].astype(bool)
    w = counts[:, order].astype(np.float64)
    w_neg = np.where(positive, 0.0, w)
    neg_through = np.cumsum(w_neg, axis=1)  # negatives at or before each sorted position
    neg_before = neg_through - w_neg  # negatives strictly before each sorted position
    run_start = np.r_[True, s_sorted[1:] != s_sorted[:-1]]  # runs of tied scores
    starts = np.flatnonzero(run_start)
    ends = np.r_[starts[1:], s.size] - 1
    run = (np.cumsum(run_start) - 1)[positive]
    below = neg_before[:, starts[run]]  # negatives scored strictly below each positive
    tied = neg_through[:, ends[run]] - below  # negatives tied with each positive
    # integer and half-integer sums are exact in float64, so only the division rounds
    u = (w[:, positive] * (below + 0.5 * tied)).sum(axis=1)
    n_pos, n_neg = w[:, positive].sum(axis=1), w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def bootstrap_aucs(y_true: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUC in [0, 1] of each resample given as multiplicities `counts` (B, N), as `auc` would
    compute on the expanded resample; nan for a resample where no class has both labels."""
    y, s = _labels_scores(y_true, scores)
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[1] != y.shape[0]:
        raise AuditInputError(f"counts has shape {counts.shape}; expected (B, {y.shape[0]})")
    if y.ndim == 1:
        return _resampled_column_aucs(y, s, counts)
    per_class = np.stack([_resampled_column_aucs(y[:, k], s[:, k], counts) for k in range(y.shape[1])], axis=1)
    defined = np.isfinite(per_class)
    n_defined = defined.sum(axis=1)
    total = np.where(defined, per_class, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_defined > 0, total / n_defined, np.nan)


def _interval(point: float, values: np.ndarray, confidence: float) -> Interval:
    finite = values[np.isfinite(values)]
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(finite, [tail, 100.0 - tail]) if finite.size else (np.nan, np.nan)
    return Interval(
        point=float(point),
        low=float(low),
        high=float(high),
        confidence=confidence,
        resamples=int(values.size),
        degenerate=int(values.size - finite.size),
    )


def bootstrap_paired_auc(
    y_true: np.ndarray,
    clean: np.ndarray,
    adversarial: np.ndarray,
    control: np.ndarray,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> PairedAUC:
    """AUCs (in [0, 1]) of clean, adversarial and control-noise scores, their ratios to clean and
    the adversarial-specific drop (control - adversarial, in [-1, 1]), each with a percentile
    interval from the same seeded resamples of images (or of patients when `groups` is given)."""
    if resamples < 1 or not 0.0 < confidence < 1.0:
        raise AuditInputError(
            f"resamples={resamples}, confidence={confidence}: need resamples >= 1 and 0 < confidence < 1"
        )
    y, s_clean = _labels_scores(y_true, clean, name="clean")
    _, s_adv = _labels_scores(y, adversarial, name="adversarial")
    _, s_ctrl = _labels_scores(y, control, name="control")
    point_c, point_a, point_n = (np.float64(auc(y, s)) for s in (s_clean, s_adv, s_ctrl))
    if not np.isfinite(point_c):
        raise AuditInputError(
            "y_true: test labels contain one class only; AUC is undefined; use a test set with both classes"
        )
    counts = resample_counts(y.shape[0], resamples=resamples, seed=seed, groups=groups)
    c, a, n = (bootstrap_aucs(y, s, counts) for s in (s_clean, s_adv, s_ctrl))
    with np.errstate(invalid="ignore", divide="ignore"):  # clean AUC 0: ratio undefined
        return PairedAUC(
            clean=_interval(point_c, c, confidence),
            adversarial=_interval(point_a, a, confidence),
            control=_interval(point_n, n, confidence),
            relative=_interval(point_a / point_c, a / c, confidence),
            relative_control=_interval(point_n / point_c, n / c, confidence),
            adversarial_specific_drop=_interval(point_n - point_a, n - a, confidence),
        )


def _binary(values, name: str) -> np.ndarray:
    v = np.asarray(values)
    if v.ndim != 1 or not np.isin(v, (0, 1)).all():
        raise AuditInputError(f"{name}: expected 0/1 decisions of shape (N,); got {v.shape}")
    return v.astype(bool)


def flips(y_pred_clean: np.ndarray, y_pred_adv: np.ndarray) -> dict[str, int]:
    """Counts of binary decisions (N,) that flip under attack: positive -> negative,
    negative -> positive, and unchanged; the three sum to N."""
    clean, adv = _binary(y_pred_clean, "y_pred_clean"), _binary(y_pred_adv, "y_pred_adv")
    if clean.shape != adv.shape:
        raise AuditInputError(f"y_pred_clean {clean.shape} and y_pred_adv {adv.shape} differ")
    return {
        "pos_to_neg": int((clean & ~adv).sum()),
        "neg_to_pos": int((~clean & adv).sum()),
        "unchanged": int((clean == adv).sum()),
    }


def threshold_at_specificity(y_true: np.ndarray, scores_clean: np.ndarray, specificity: float) -> float:
    """Smallest threshold (decision = score >= threshold) whose specificity on the clean negatives
    is >= `specificity` in [0, 1]. Candidates are the distinct clean scores, as the points of the
    ROC curve, and +inf (no image positive) when no observed score reaches the target."""
    y, s = _labels_scores(y_true, scores_clean, name="scores_clean")
    if y.ndim != 1 or not 0.0 <= specificity <= 1.0:
        raise AuditInputError(
            f"threshold_at_specificity: needs binary (N,) labels and 0 <= specificity <= 1; "
            f"got shape {y.shape}, specificity={specificity}"
        )
    negatives = np.sort(s[y == 0])
    if negatives.size == 0:
        raise AuditInputError("y_true: test labels contain no negatives; specificity is undefined")
    candidates = np.unique(s)
    spec = np.searchsorted(negatives, candidates, side="left") / negatives.size
    reached = candidates[spec >= specificity]
    return float(reached[0]) if reached.size else float("inf")


def sensitivity_at_threshold(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """Fraction in [0, 1] of positives with score >= threshold; nan when there is no positive."""
    y, s = _labels_scores(y_true, scores)
    if y.ndim != 1:
        raise AuditInputError(f"sensitivity_at_threshold: needs binary (N,) labels; got {y.shape}")
    positives = s[y == 1]
    return float((positives >= threshold).mean()) if positives.size else float("nan")


def ssim_per_image(originals: np.ndarray, perturbed: np.ndarray, *, data_range: float = 2.0) -> np.ndarray:
    """SSIM (Wang et al. 2004) per image, values in [-1, 1], of (N, C, H, W) images in [-1, 1];
    window 7 px or the largest odd size that fits, colour channels averaged. Computed on the
    images shifted to [0, data_range], i.e. the usual SSIM of [0, 1] intensities."""
    # SSIM's luminance term is not shift-invariant: on raw [-1, 1] it collapses where the mean is ~0
    x = np.asarray(originals, dtype=np.float64) + data_range / 2.0
    p = np.asarray(perturbed, dtype=np.float64) + data_range / 2.0
    if x.ndim != 4 or x.shape != p.shape or min(x.shape[2:]) < 3:
        raise AuditInputError(
            f"originals {x.shape} and perturbed {p.shape}: need equal (N, C, H, W) shapes with H, W >= 3"
        )
    side = min(x.shape[2:])
    win_size = min(7, side if side % 2 else side - 1)
    hwc = (0, 2, 3, 1)  # skimage wants channels last; one channel averages to itself
    return np.array(
        [
            structural_similarity(a, b, data_range=data_range, win_size=win_size, channel_axis=-1)
            for a, b in zip(x.transpose(hwc), p.transpose(hwc))
        ],
        dtype=np.float64,
    )


def mean_ssim(originals: np.ndarray, perturbed: np.ndarray, *, data_range: float = 2.0) -> float:
    """Mean SSIM over images in [-1, 1] (see `ssim_per_image`); nan for zero images."""
    per_image = ssim_per_image(originals, perturbed, data_range=data_range)
    return float(per_image.mean()) if per_image.size else float("nan")


def specificity_at_threshold(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """Fraction in [0, 1] of negatives with score < threshold; nan when there is no negative."""
    y, s = _labels_scores(y_true, scores)
    if y.ndim != 1:
        raise AuditInputError(f"specificity_at_threshold: needs binary (N,) labels; got {y.shape}")
    negatives = s[y == 0]
    return float((negatives < threshold).mean()) if negatives.size else float("nan")


@dataclass(frozen=True)
class DecisionChanges:
    """How perturbed images change the target's binary decisions (score >= threshold) by true label."""

    true_positives_lost: int  # positives flagged on the clean image, missed on the perturbed one
    false_positives_created: int  # negatives cleared on the clean image, flagged on the perturbed one
    flips: int  # every changed decision, either direction, either label


def decision_changes(y_true: np.ndarray, clean: np.ndarray, perturbed: np.ndarray, threshold: float) -> DecisionChanges:
    """Decision changes at `threshold` between clean and perturbed scores of the same images (binary)."""
    y, s_clean = _labels_scores(y_true, clean, name="clean")
    _, s_pert = _labels_scores(y, perturbed, name="perturbed")
    if y.ndim != 1:
        raise AuditInputError(f"decision_changes: needs binary (N,) labels; got {y.shape}")
    before, after, positive = s_clean >= threshold, s_pert >= threshold, y == 1
    return DecisionChanges(
        true_positives_lost=int((positive & before & ~after).sum()),
        false_positives_created=int((~positive & ~before & after).sum()),
        flips=int((before != after).sum()),
    )


@dataclass(frozen=True)
class PairedDifference:
    """A - B on the same test images, from the same resamples: adversarial AUC and relative AUC."""

    auc_adversarial: Interval  # in [-1, 1]
    relative_auc: Interval


def bootstrap_paired_difference(
    y_true: np.ndarray,
    clean_a: np.ndarray,
    adversarial_a: np.ndarray,
    clean_b: np.ndarray,
    adversarial_b: np.ndarray,
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> PairedDifference:
    """Paired bootstrap of the difference between two attack settings (two rows: clean_a == clean_b)
    or two targets (different clean scores) on the same images: adversarial AUC A - B and relative
    AUC A/clean_A - B/clean_B, each with a percentile interval over one set of resamples (of images,
    or of patients when `groups` is given), so the shared images' variance cancels."""
    y, ca = _labels_scores(y_true, clean_a, name="clean_a")
    arrays = [ca] + [
        _labels_scores(y, s, name=n)[1]
        for s, n in ((adversarial_a, "adversarial_a"), (clean_b, "clean_b"), (adversarial_b, "adversarial_b"))
    ]
    points = [np.float64(auc(y, s)) for s in arrays]
    counts = resample_counts(y.shape[0], resamples=resamples, seed=seed, groups=groups)
    c_a, a_a, c_b, a_b = (bootstrap_aucs(y, s, counts) for s in arrays)
    with np.errstate(invalid="ignore", divide="ignore"):
        return PairedDifference(
            auc_adversarial=_interval(points[1] - points[3], a_a - a_b, confidence),
            relative_auc=_interval(points[1] / points[0] - points[3] / points[2], a_a / c_a - a_b / c_b, confidence),
        )
