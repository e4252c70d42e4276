"""What the attacks mean for patients: the one worst case over every tier, with the decisions it changes both ways
at the locked threshold, beside noise of the same size; and what the test set's size can show.

`judging.harm` builds both; the report, summary.md and junit.xml read them as they are.
"""

from __future__ import annotations

from medaudit.attacks import Tier
from medaudit.records.measurements import IntervalRecord, Record


class DecisionTally(Record):
    """Decisions at the locked threshold that one perturbation changed, both ways, on one cell's test images.

    Net sensitivity change = (gained - lost) / positives; net specificity change = (removed - created) / negatives.
    The per-1,000 figures are net: more missed diseased patients (negative: fewer) and more false alarms."""

    true_positives_lost: int  # diseased, flagged on the clean image, missed on the perturbed one
    true_positives_gained: int  # diseased, missed on the clean image, flagged on the perturbed one
    false_positives_created: int  # healthy, cleared on the clean image, flagged on the perturbed one
    false_positives_removed: int  # healthy, flagged on the clean image, cleared on the perturbed one
    sensitivity_change: float  # perturbed minus clean sensitivity: (gained - lost) / positives
    specificity_change: float  # perturbed minus clean specificity: (removed - created) / negatives
    missed_per_1000: float  # net extra missed diseased patients per 1,000 screened, at the stated prevalence
    false_alarms_per_1000: float  # net extra false alarms per 1,000 screened, at the stated prevalence


class WorstCase(Record):
    """The admissible cell of any tier that left the target the least of its clean AUC, in patients' terms."""

    tier: Tier
    row_id: str
    attacker_id: str
    attack_id: str
    epsilon_pm1: float
    epsilon_grey_levels: float
    n_images: int  # test images the cell measured (a bound tier may run on a subset)
    auc_clean: IntervalRecord  # on the cell's images
    auc_adversarial: IntervalRecord
    relative_auc: IntervalRecord
    threshold: float | None  # the locked decision threshold (None: not a binary task, no decisions counted)
    positives: int | None  # diseased cases among the cell's images
    negatives: int | None  # healthy cases among the cell's images
    prevalence: float | None  # share of screened patients with the condition that the per-1,000 figures use
    prevalence_source: str  # "the card's stated prevalence" or "the test set's prevalence (the card states none)"
    attack: DecisionTally | None  # the crafted perturbation (None: not binary)
    noise: DecisionTally | None  # the shuffled control noise of the same size
    crafting: DecisionTally | None  # attack minus noise: what crafting adds beyond noise
    statement: str  # the same numbers in plain words


class SampleSize(Record):
    """What one tier's test images can show: their classes, the interval width reached and the smallest drop they
    can tell from none (Hanley & McNeil 1982 standard error of the clean AUC, at the stated confidence)."""

    tier: Tier
    images: int  # test images the tier's cells measured
    positives: int
    negatives: int
    confidence: float  # of every interval, e.g. 0.95
    auc_clean: float  # the clean AUC on these images
    auc_half_width: float  # half the clean AUC's bootstrap interval, as achieved
    detectable_auc_drop: float  # z x standard error: the smallest AUC drop distinguishable from none
    detectable_relative_drop: float  # the same as a share of the clean AUC
    too_small_for: tuple[str, ...]  # criterion ids whose margin is smaller than the drop this set can detect
    statement: str  # one sentence for page 1 and the method section
