"""Decisions at the clinical operating point: the threshold, sensitivity and specificity, and the decisions a
perturbation changes. Pure functions on arrays; scores are probability-like (higher = more positive) and a case
is flagged when its score is at least the threshold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medaudit.core.errors import AuditInputError
from medaudit.core.metrics import labels_scores


def threshold_at_specificity(y_true: np.ndarray, scores_clean: np.ndarray, specificity: float) -> float:
    """Smallest threshold (decision = score >= threshold) whose specificity on the clean negatives
    is >= `specificity` in [0, 1]. Candidates are the distinct clean scores, as the points of the
    ROC curve, and +inf (no image positive) when no observed score reaches the target."""
    y, s = labels_scores(y_true, scores_clean, name="scores_clean")
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
    y, s = labels_scores(y_true, scores)
    if y.ndim != 1:
        raise AuditInputError(f"sensitivity_at_threshold: needs binary (N,) labels; got {y.shape}")
    positives = s[y == 1]
    return float((positives >= threshold).mean()) if positives.size else float("nan")


def specificity_at_threshold(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """Fraction in [0, 1] of negatives with score < threshold; nan when there is no negative."""
    y, s = labels_scores(y_true, scores)
    if y.ndim != 1:
        raise AuditInputError(f"specificity_at_threshold: needs binary (N,) labels; got {y.shape}")
    negatives = s[y == 0]
    return float((negatives < threshold).mean()) if negatives.size else float("nan")


CHANGE_COUNTS = ("true_positives_lost", "true_positives_gained", "false_positives_created", "false_positives_removed")


@dataclass(frozen=True)
class DecisionChanges:
    """How perturbed images change the target's binary decisions (score >= threshold) by true label."""

    true_positives_lost: int  # positives flagged on the clean image, missed on the perturbed one
    true_positives_gained: int  # positives missed on the clean image, flagged on the perturbed one
    false_positives_created: int  # negatives cleared on the clean image, flagged on the perturbed one
    false_positives_removed: int  # negatives flagged on the clean image, cleared on the perturbed one
    flips: int  # every changed decision, either direction, either label


def decision_changes(y_true: np.ndarray, clean: np.ndarray, perturbed: np.ndarray, threshold: float) -> DecisionChanges:
    """Decision changes at `threshold` between clean and perturbed scores of the same images (binary)."""
    y, s_clean = labels_scores(y_true, clean, name="clean")
    _, s_pert = labels_scores(y, perturbed, name="perturbed")
    if y.ndim != 1:
        raise AuditInputError(f"decision_changes: needs binary (N,) labels; got {y.shape}")
    before, after, positive = s_clean >= threshold, s_pert >= threshold, y == 1
    return DecisionChanges(
        true_positives_lost=int((positive & before & ~after).sum()),
        true_positives_gained=int((positive & ~before & after).sum()),
        false_positives_created=int((~positive & ~before & after).sum()),
        false_positives_removed=int((~positive & before & ~after).sum()),
        flips=int((before != after).sum()),
    )


def harmful_flips(y_true: np.ndarray, clean: np.ndarray, perturbed: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the images whose binary decision (score >= threshold) the perturbation flipped the harmful way:
    positives flagged on the clean image and missed on the perturbed one, negatives cleared and then flagged; the
    largest score change first (ties by index)."""
    y, s_clean = labels_scores(y_true, clean, name="clean")
    _, s_pert = labels_scores(y, perturbed, name="perturbed")
    if y.ndim != 1:
        raise ValueError(f"harmful_flips: needs binary (N,) labels; got {y.shape}")
    before, after, positive = s_clean >= threshold, s_pert >= threshold, y == 1
    flipped = np.flatnonzero((positive & before & ~after) | (~positive & ~before & after))
    change = np.abs(s_pert[flipped] - s_clean[flipped])
    return flipped[np.lexsort((flipped, -change))]
