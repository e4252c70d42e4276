"""The acceptance criteria a scenario's `gate` can state, and how one interval is judged against one of them.

A criterion passes only when its judged 95% bound meets it (ISO/IEC TR 24029-1 objective criteria); an interval
that straddles the threshold is INCONCLUSIVE. Each criterion names its risk-file entries (AAMI TIR34971:
hazardous situation, harm, suggested control), so a failed rule can be copied into a risk file as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from medaudit.records.measurements import IntervalRecord
from medaudit.scenario import GateSection

Outcome = Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR"]


@dataclass(frozen=True)
class Criterion:
    """One acceptance criterion of the scenario's `gate` section, and its line in the risk file."""

    id: str  # stable id a risk file cites, e.g. `C-REL-AUC`
    key: str  # last part of a rule id, e.g. `min-relative-auc`
    threshold_field: str  # the `GateSection` field holding its threshold (None: not judged)
    cell_field: str  # the `CellRecord` interval it judges (and the `metrics.Curves` field of its curve)
    at_least: bool  # True: lower bound >= threshold; False: upper bound <= threshold
    clean_value: float  # its value at epsilon 0 (no perturbation), where a breaking-epsilon curve starts
    endpoint: str  # what is measured, in words
    short: str  # the same in two or three words, for page 1
    hazardous_situation: str  # AAMI TIR34971: the situation a failure exposes a patient to
    harm: str  # the possible harm that situation can lead to
    control_id: str  # the suggested control (a key of CONTROLS)


CRITERIA = (
    Criterion(
        "C-REL-AUC",
        "min-relative-auc",
        "min_relative_auc",
        "relative_auc",
        True,
        1.0,
        "relative AUC under attack (adversarial / clean)",
        "relative AUC",
        "an edited image reaches the target and its ranking of diseased above healthy cases degrades",
        "missed or delayed diagnosis (false negatives), unnecessary follow-up (false positives)",
        "CTL-IMAGE-INTEGRITY",
    ),
    Criterion(
        "C-ADV-DROP",
        "max-adversarial-specific-drop",
        "max_adversarial_specific_drop",
        "adversarial_specific_drop",
        False,
        0.0,
        "adversarial-specific AUC drop (control noise − adversarial)",
        "drop beyond noise",
        "a crafted perturbation, beyond what noise of the same size does, changes the target's decisions",
        "missed or delayed diagnosis, unnecessary follow-up, loss of clinicians' trust in the device",
        "CTL-ADV-HARDEN",
    ),
    Criterion(
        "C-NOISE",
        "min-control-relative-auc",
        "min_control_relative_auc",
        "relative_auc_control",
        True,
        1.0,
        "noise fragility: relative AUC under control noise (control / clean)",
        "noise fragility",
        "ordinary, uncrafted noise of the attack's size (acquisition, compression) degrades the target",
        "wrong decisions on degraded images without any attacker: missed findings, false alarms",
        "CTL-NOISE-ROBUST",
    ),
)
CONTROLS = {  # control id -> the control a manufacturer can put in its risk file
    "CTL-IMAGE-INTEGRITY": "protect the image path from acquisition to the model (signed DICOM, checksums, access "
    "control) so images cannot be edited in transit; keep the model and its development data "
    "confidential",
    "CTL-ADV-HARDEN": "harden the model (adversarial training or input purification) and re-audit, including "
    "with an attacker who adapts to the defence",
    "CTL-NOISE-ROBUST": "train with noise augmentation and add an input-quality check that refers degraded "
    "images to a human reader",
}

CONTROL_STEPS = {  # control id -> the same control as a next step on page 1 (at most a dozen words)
    "CTL-IMAGE-INTEGRITY": "protect the image path (signed DICOM, checksums, access control)",
    "CTL-ADV-HARDEN": "harden the model (adversarial training) and re-audit",
    "CTL-NOISE-ROBUST": "train with noise augmentation; refer degraded images to a reader",
}


def stated(gate: GateSection) -> list[tuple[Criterion, float]]:
    """The criteria the scenario states, with their thresholds, in registry order."""
    return [(c, getattr(gate, c.threshold_field)) for c in CRITERIA if getattr(gate, c.threshold_field) is not None]


def threshold_text(x: float) -> str:
    """A threshold for a rule text: at least two decimals, no trailing noise (0.8 -> 0.80, 0.825 -> 0.825)."""
    s = f"{x:.3f}".rstrip("0")
    return s + "0" * max(0, 2 - len(s.split(".")[1]))


def rule_text(criterion: Criterion, threshold: float, confidence: float) -> str:
    bound, op = ("lower", "≥") if criterion.at_least else ("upper", "≤")
    return f"{criterion.endpoint}, {bound} {100 * confidence:g}% bound {op} {threshold_text(threshold)}"


def judge_interval(iv: IntervalRecord, criterion: Criterion, threshold: float) -> tuple[Outcome, str]:
    """One interval against one criterion: PASS when the judged bound meets it, FAIL when the whole interval misses."""
    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return "ERROR", (
            f"the interval is undefined ({iv.degenerate} of {iv.resamples} resamples had one class "
            "only); use a larger test set"
        )
    t, lo, hi = threshold_text(threshold), f"{iv.low:.3f}", f"{iv.high:.3f}"
    if criterion.at_least:
        if iv.low >= threshold:
            return "PASS", f"lower bound {lo} ≥ {t}"
        if iv.high < threshold:
            return "FAIL", f"the whole interval ({lo}, {hi}) lies below {t}"
        return "INCONCLUSIVE", f"interval ({lo}, {hi}) straddles {t}: the lower bound misses it (point {iv.point:.3f})"
    if iv.high <= threshold:
        return "PASS", f"upper bound {hi} ≤ {t}"
    if iv.low > threshold:
        return "FAIL", f"the whole interval ({lo}, {hi}) lies above {t}"
    return "INCONCLUSIVE", f"interval ({lo}, {hi}) straddles {t}: the upper bound misses it (point {iv.point:.3f})"
