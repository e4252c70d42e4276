"""What the stages measure, as typed frozen records: intervals, cells, surrogates, the epsilon search, fitness.

`records/results.py` assembles them into the run's record. Every field is typed, units are in the names, and a field
carries a comment where its name is not enough.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

from medaudit.attacks import AttackSpec, Tier


class Record(BaseModel):
    # non-finite floats are real values here (a threshold above every score is +inf, an interval with no
    # defined bound is nan): JSON has no literal for them, so they are written as the strings "Infinity" /
    # "NaN" (standard JSON, read back as floats) instead of null, which would not read back
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")


class IntervalRecord(Record):
    """A point estimate with its bootstrap percentile interval."""

    point: float
    low: float
    high: float
    confidence: float
    resamples: int
    degenerate: int  # resamples with one class only (AUC undefined), excluded and counted

    @classmethod
    def of(cls, interval) -> IntervalRecord:
        """The record of a `metrics.Interval` (a dataclass with these same fields)."""
        return cls(**dataclasses.asdict(interval))

    @property
    def finite(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)


class OperatingPoint(Record):
    """The target's decisions at the clinical threshold, clean vs under attack vs control noise (binary).

    A positive is a case the target flags (score >= threshold). Flips are split by true label: a true
    positive lost is a diseased case flagged on the clean image and missed on the perturbed one."""

    threshold: float  # score threshold, in the target's probability space
    threshold_rule: str  # how it was set: the card's locked threshold, or a specificity on unseen development images
    sensitivity_clean: float
    specificity_clean: float
    sensitivity_adversarial: float
    specificity_adversarial: float
    sensitivity_control: float
    specificity_control: float
    positives: int  # diseased cases among the cell's images
    negatives: int  # healthy cases among the cell's images
    true_positives_lost: int  # positives flagged clean, missed under attack
    true_positives_gained: int  # positives missed clean, flagged under attack
    false_positives_created: int  # negatives cleared clean, flagged under attack
    false_positives_removed: int  # negatives flagged clean, cleared under attack
    true_positives_lost_control: int  # the same four, caused by the control noise
    true_positives_gained_control: int
    false_positives_created_control: int
    false_positives_removed_control: int
    decision_flips: int  # all decisions the attack changed (either direction, either label)
    decision_flips_control: int


class TransferCheck(Record):
    """Do an attacker's perturbations move models of its row that did not make them (other seeds, the probe)?"""

    model_ids: tuple[str, ...]  # the row's models outside the attacker, on which its images were scored
    auc_adversarial: float  # their mean AUC on the attacker's adversarial images
    relative_auc: float  # their mean adversarial / clean AUC
    drop_beyond_control: IntervalRecord  # their mean (control - adversarial) AUC, paired bootstrap over test images


class CellRecord(Record):
    """One cell of the grid: one attacker (a surrogate, an ensemble, or the target itself for the bound tiers),
    one attack, one epsilon, measured on the target."""

    id: str
    tier: Tier
    attacker_id: str  # a surrogate's id, an ensemble's id (`ens-...`), or the tier's name for query / white-box
    member_ids: tuple[str, ...]  # the surrogates attacked together (empty for the bound tiers)
    row_id: str  # the scenario row (surrogate knowledge), e.g. `same-random-d2`; the tier's name for bound tiers
    attack_id: str
    attack: AttackSpec  # every attack parameter
    epsilon_pm1: float  # L-inf bound, [-1, 1] units
    epsilon_grey_levels: float  # the same bound in 8-bit grey levels (x 127.5)
    n_images: int  # test images measured (a bound tier may run on a stated subset)
    auc_clean: IntervalRecord
    auc_adversarial: IntervalRecord
    auc_control: IntervalRecord
    relative_auc: IntervalRecord  # adversarial / clean
    relative_auc_control: IntervalRecord  # control / clean
    adversarial_specific_drop: IntervalRecord  # control - adversarial
    per_class_auc_clean: tuple[float, ...]
    per_class_auc_adversarial: tuple[float, ...]
    surrogate_auc_clean: IntervalRecord | None  # the attacker's own clean test AUC (transfer tier only)
    surrogate_auc_whitebox: float | None  # the attacker's AUC on its own adversarial images (reported, not required)
    transfer: TransferCheck | None  # transfer to the row's models outside the attacker (None: the row has none)
    operating_point: OperatingPoint | None  # binary tasks only
    mean_ssim: float
    mean_ssim_control: float
    max_abs_delta_pm1: float  # largest |x_adv - x| reached, [-1, 1] units (<= epsilon_pm1)
    target_queries: int  # images the target scored for this cell (crafting queries included for the query tier)


class EpochRecord(Record):
    """One epoch of a model's learning curve."""

    epoch: int  # 1-based
    train_loss: float  # mean training loss over the epoch's batches (augmented, class-balanced)
    val_auc: float  # on the split's fixed validation images, after the epoch
    learning_rate: float  # Adam's learning rate during the epoch
    seconds: float  # wall time of the epoch, validation included


class AttackerFitness(Record):
    """Whether one attacker, with one attack, is evidence of robustness: it learned the task, and at the judged
    epsilon its perturbations move a model of its row that did not make them beyond that model's own control."""

    attack_id: str
    fit: bool
    epsilon_pm1: float | None  # where transfer was checked: the attack's largest admissible epsilon
    test_auc: IntervalRecord  # the attacker's clean test AUC
    test_auc_floor: float  # ... whose lower bound must reach this
    transfer: TransferCheck | None  # at `epsilon_pm1`; None: its row has no model outside it
    transfer_floor: float  # the lower bound of `transfer.drop_beyond_control` must exceed this
    whitebox_auc: float | None  # its own AUC under the attack at `epsilon_pm1` (reported, not required)
    reasons: tuple[str, ...]  # why it is unfit (empty when fit)


class SurrogateResult(Record):
    """A trained surrogate (or an ensemble of them), how it learned and, per attack, whether it is fit."""

    id: str
    row_id: str
    arch: str
    family: str
    init: str
    split: str
    seed: int  # training seed (-1 for an ensemble)
    member_ids: tuple[str, ...]  # ensemble members (empty for one model)
    role: Literal["attacker", "probe"]  # a probe is trained only to check its row's ensembles' transfer
    n_train: int
    n_val: int
    val_auc: float
    test_auc: IntervalRecord | None  # clean test AUC with its bootstrap interval (None: a probe, never attacked)
    epochs_run: int
    best_epoch: int
    stop_reason: str  # `plateau` (validation AUC stopped improving) or `budget` (epoch budget ran out)
    learning_curve: tuple[EpochRecord, ...]
    train_seconds: float
    from_cache: bool
    trained_by: str  # the code commit of the run that trained it (`medaudit` provenance)
    atlas: tuple[str, ...]  # MITRE ATLAS technique ids this row exercises
    fitness: tuple[AttackerFitness, ...]  # per attack; set by finalize

    def fitness_for(self, attack_id: str) -> AttackerFitness | None:
        return next((f for f in self.fitness if f.attack_id == attack_id), None)


class SearchStep(Record):
    """One epsilon the search tried and the mean SSIM of the attack's images there."""

    epsilon_pm1: float
    mean_ssim: float


class EpsilonSearch(Record):
    """How `epsilons_pm1: auto` placed one attack's epsilons: a bracketed search of mean SSIM on a few test images."""

    attack_id: str
    attacker: str  # the model the search attacked (the first surrogate; the target for the bound tiers)
    n_images: int  # test images the SSIM was measured on
    steps: tuple[SearchStep, ...]  # in the order tried
    ceiling_pm1: float  # the search's upper limit: 1, or the most the attack can move a pixel (iterations x step)
    bound_epsilon_pm1: float | None  # largest epsilon keeping mean SSIM >= the bound (None: not below the ceiling)
    near_invisible_epsilon_pm1: float | None  # the same for the near-invisible reference SSIM
    monotone: bool  # False: a larger epsilon gave a higher SSIM somewhere (the grid is checked cell by cell)
    epsilons_pm1: tuple[float, ...]  # the grid measured: the attack's `auto_fractions` of the bound's epsilon


class LoadCheck(Record):
    """What the target's load check saw on the audit images."""

    images: int
    output_columns: int
    deterministic_max_diff: float  # largest difference between two runs on the same input
    passed: bool


class BoundCheck(Record):
    """One check that the white-box attack is close to optimal (Carlini et al. 2019, docs/bounds.md): it passes when
    `auc_bound <= auc_reference + tolerance`."""

    check: Literal["convergence", "reach", "order"]
    passed: bool
    epsilon_pm1: float  # where it was measured
    images: int  # test images it was measured on
    auc_bound: float  # the white-box attack's AUC there
    # convergence: the same attack with twice the iterations and restarts; reach: the ceiling it must fall to;
    # order: the other attacker's AUC on the same images, at an epsilon no larger
    auc_reference: float
    tolerance: float
    against: str  # what it was compared with, in words (an attack id, "AUC 0.05", an attacker and its epsilon)


class TierStatus(Record):
    """Whether a bound tier could run on this target, and with what."""

    tier: Tier
    available: bool
    reason: str  # how it ran (converter, max difference to the runner) or, when unavailable, why not
    images: int  # test images it attacked
    target_queries: int  # every image it sent to the target: checks, crafting (query tier) and scoring
    seconds: float
    checks: tuple[BoundCheck, ...]  # white-box: convergence and reach, measured with the tier; () otherwise
