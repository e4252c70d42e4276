"""Audit metrics: pure functions on numpy arrays, each with a defined answer on degenerate input.

AUC values lie in [0, 1] (nan where undefined: one label value only). Bootstrap intervals are
percentile intervals (Efron & Tibshirani 1993, ch. 13) over images, or over patients when
`groups` is given (cluster bootstrap); undefined resamples are excluded and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from medaudit.core.errors import AuditInputError

SSIM_WINDOW = 7  # px, scikit-image's default window side
SSIM_K1, SSIM_K2 = 0.01, 0.03  # Wang et al. (2004)'s stability constants


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


def labels_scores(y_true, scores, *, name: str = "scores") -> tuple[np.ndarray, np.ndarray]:
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
    y, s = labels_scores(y_true, scores)
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
    y, s = labels_scores(y_true, scores)
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


def percentile_interval(point: float, values: np.ndarray, confidence: float) -> Interval:
    """`point` with the percentile interval of `values` (one statistic per resample); nan resamples are left out
    of the bounds and counted as degenerate."""
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
    y, s_clean = labels_scores(y_true, clean, name="clean")
    _, s_adv = labels_scores(y, adversarial, name="adversarial")
    _, s_ctrl = labels_scores(y, control, name="control")
    point_c, point_a, point_n = (np.float64(auc(y, s)) for s in (s_clean, s_adv, s_ctrl))
    if not np.isfinite(point_c):
        raise AuditInputError(
            "y_true: test labels contain one class only; AUC is undefined; use a test set with both classes"
        )
    counts = resample_counts(y.shape[0], resamples=resamples, seed=seed, groups=groups)
    c, a, n = (bootstrap_aucs(y, s, counts) for s in (s_clean, s_adv, s_ctrl))
    with np.errstate(invalid="ignore", divide="ignore"):  # clean AUC 0: ratio undefined
        return PairedAUC(
            clean=percentile_interval(point_c, c, confidence),
            adversarial=percentile_interval(point_a, a, confidence),
            control=percentile_interval(point_n, n, confidence),
            relative=percentile_interval(point_a / point_c, a / c, confidence),
            relative_control=percentile_interval(point_n / point_c, n / c, confidence),
            adversarial_specific_drop=percentile_interval(point_n - point_a, n - a, confidence),
        )


def _check_pair(originals: np.ndarray, perturbed: np.ndarray) -> None:
    x, p = np.shape(originals), np.shape(perturbed)
    if len(x) != 4 or x != p or min(x[2:]) < 3:
        raise AuditInputError(f"originals {x} and perturbed {p}: need equal (N, C, H, W) shapes with H, W >= 3")


def ssim_per_image(originals: np.ndarray, perturbed: np.ndarray, *, data_range: float = 2.0) -> np.ndarray:
    """SSIM (Wang et al. 2004) per image, values in [-1, 1], of (N, C, H, W) images in [-1, 1]; window 7 px or the
    largest odd size that fits, colour channels averaged. Computed on the images shifted to [0, data_range], i.e.
    the usual SSIM of [0, 1] intensities: exactly scikit-image's `structural_similarity` (uniform window, sample
    covariance, K1 0.01, K2 0.03, the window's radius cropped at the borders), for every image at once."""
    from scipy.ndimage import uniform_filter

    _check_pair(originals, perturbed)
    # SSIM's luminance term is not shift-invariant: on raw [-1, 1] it collapses where the mean is ~0
    x = np.asarray(originals, dtype=np.float64) + data_range / 2.0
    p = np.asarray(perturbed, dtype=np.float64) + data_range / 2.0
    n, c, h, w = x.shape
    side = min(h, w)
    win = min(SSIM_WINDOW, side if side % 2 else side - 1)
    x, p = x.reshape(n * c, h, w), p.reshape(n * c, h, w)

    def mean(a: np.ndarray) -> np.ndarray:
        return uniform_filter(a, size=(1, win, win))

    ux, uy = mean(x), mean(p)
    cov_norm = win * win / (win * win - 1)  # sample covariance, as scikit-image's default
    vx, vy = cov_norm * (mean(x * x) - ux * ux), cov_norm * (mean(p * p) - uy * uy)
    vxy = cov_norm * (mean(x * p) - ux * uy)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    per_channel = s[:, pad : h - pad, pad : w - pad].mean(axis=(1, 2), dtype=np.float64)
    return per_channel.reshape(n, c).mean(axis=1)


def mean_ssim(originals: np.ndarray, perturbed: np.ndarray, *, data_range: float = 2.0) -> float:
    """Mean SSIM (see `ssim_per_image`) over the images the perturbation changed: an attack that leaves an image
    as it is (a query or white-box attack skips images the target already misclassifies) shows nothing on it, and
    counting it would make the attack look less visible. 1.0 when no image changed; nan for zero images."""
    _check_pair(originals, perturbed)
    originals, perturbed = np.asarray(originals), np.asarray(perturbed)
    if len(originals) == 0:
        return float("nan")
    changed = np.any((originals != perturbed).reshape(len(originals), -1), axis=1)
    if not changed.any():
        return 1.0
    return float(ssim_per_image(originals[changed], perturbed[changed], data_range=data_range).mean())


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
    y, ca = labels_scores(y_true, clean_a, name="clean_a")
    arrays = [ca] + [
        labels_scores(y, s, name=n)[1]
        for s, n in ((adversarial_a, "adversarial_a"), (clean_b, "clean_b"), (adversarial_b, "adversarial_b"))
    ]
    points = [np.float64(auc(y, s)) for s in arrays]
    counts = resample_counts(y.shape[0], resamples=resamples, seed=seed, groups=groups)
    c_a, a_a, c_b, a_b = (bootstrap_aucs(y, s, counts) for s in arrays)
    with np.errstate(invalid="ignore", divide="ignore"):
        return PairedDifference(
            auc_adversarial=percentile_interval(points[1] - points[3], a_a - a_b, confidence),
            relative_auc=percentile_interval(
                points[1] / points[0] - points[3] / points[2], a_a / c_a - a_b / c_b, confidence
            ),
        )


def bootstrap_mean_drop(
    y_true: np.ndarray,
    before: Sequence[np.ndarray],
    after: Sequence[np.ndarray],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> Interval:
    """Mean over models i of AUC(before_i) - AUC(after_i), in [-1, 1], with a percentile interval from one set of
    seeded resamples of images (or patients) shared by every model, so the images' variance cancels. E.g. the
    models a surrogate did not make, scored on its control images (before) and on its adversarial images (after)."""
    if len(before) != len(after) or not before:
        raise ValueError(f"need one `after` per `before` and at least one model; got {len(before)} and {len(after)}")
    y, _ = labels_scores(y_true, before[0], name="before")
    pairs = [
        (labels_scores(y, b, name="before")[1], labels_scores(y, a, name="after")[1]) for b, a in zip(before, after)
    ]
    point = float(np.mean([auc(y, b) - auc(y, a) for b, a in pairs]))
    counts = resample_counts(y.shape[0], resamples=resamples, seed=seed, groups=groups)
    values = np.mean([bootstrap_aucs(y, b, counts) - bootstrap_aucs(y, a, counts) for b, a in pairs], axis=0)
    return percentile_interval(point, values, confidence)


@dataclass(frozen=True)
class Curves:
    """The three criterion values of one attacker at each epsilon of its grid, as points and on every resample."""

    relative_auc: np.ndarray  # (E,) adversarial / clean
    adversarial_specific_drop: np.ndarray  # (E,) control - adversarial
    relative_auc_control: np.ndarray  # (E,) control / clean
    resampled_relative_auc: np.ndarray  # (B, E)
    resampled_adversarial_specific_drop: np.ndarray  # (B, E)
    resampled_relative_auc_control: np.ndarray  # (B, E)


def bootstrap_curves(
    y_true: np.ndarray,
    clean: np.ndarray,
    adversarial: Sequence[np.ndarray],
    control: Sequence[np.ndarray],
    *,
    resamples: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> Curves:
    """Relative AUC, adversarial-specific drop and control relative AUC at each epsilon (one adversarial and one
    control score array per epsilon), as points and on the same seeded resamples as `bootstrap_paired_auc` uses
    (same seed and groups: the same resamples), for the breaking epsilon's interval."""
    y, s_clean = labels_scores(y_true, clean, name="clean")
    adv = [labels_scores(y, a, name="adversarial")[1] for a in adversarial]
    ctrl = [labels_scores(y, c, name="control")[1] for c in control]
    counts = resample_counts(y.shape[0], resamples=resamples, seed=seed, groups=groups)
    c_point, c_res = auc(y, s_clean), bootstrap_aucs(y, s_clean, counts)
    a_point = np.array([auc(y, a) for a in adv])
    n_point = np.array([auc(y, c) for c in ctrl])
    a_res = np.stack([bootstrap_aucs(y, a, counts) for a in adv], axis=1)
    n_res = np.stack([bootstrap_aucs(y, c, counts) for c in ctrl], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return Curves(
            relative_auc=a_point / c_point,
            adversarial_specific_drop=n_point - a_point,
            relative_auc_control=n_point / c_point,
            resampled_relative_auc=a_res / c_res[:, None],
            resampled_adversarial_specific_drop=n_res - a_res,
            resampled_relative_auc_control=n_res / c_res[:, None],
        )
