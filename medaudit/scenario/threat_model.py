"""Threat-model scenarios: YAML in, a validated `Scenario` out, every error naming file and field.

The vocabulary follows NIST AI 100-2 (goal, knowledge, capabilities) and the paper behind medaudit
(Bortsova et al., MedIA 2021): epsilons are L-inf bounds on images scaled to [-1, 1].
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medaudit.attacks import ATTACKS, FGSM, PGD, AttackSpec, Tier
from medaudit.core import AuditInputError, describe_validation_error

Split = Literal["d1", "d2", "d2/2", "d1/10", "full"]  # development splits (Bortsova et al. 2021, Table 1)
Init = Literal["imagenet", "random"]
GREY_BIT_DEPTH = 8  # a source this deep or shallower is delivered as 8-bit grey levels


class Strict(BaseModel):
    """Unknown keys are errors; records are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Capabilities(Strict):
    """What the attacker can do (NIST AI 100-2 'capabilities')."""

    queries_to_target: Literal[0] = 0  # transfer attacker: never queries the target
    input_edit: Literal["inference_time"] = "inference_time"
    norm: Literal["linf"] = "linf"


class CardFields(Strict):
    """The target card: the input/output contract of the deployed model (see medaudit/target/black_box.py)."""

    name: str | None = None
    intended_use: str | None = None  # as the manufacturer states it; quoted in the report
    architecture: str | None = None  # needed to resolve a surrogate `arch: same`
    init: Init | None = None  # how the target was initialised, if known
    input_size: tuple[int, int] | None = None  # (height, width) in pixels
    channels: Literal[1, 3] | None = None
    layout: Literal["NCHW", "NHWC"] | None = None
    dtype: Literal["float32", "float16", "float64", "uint8"] | None = None
    value_range: tuple[float, float] | None = None  # what image black/white map to, e.g. (0, 1), (0, 255)
    mean: tuple[float, ...] | None = None  # per-channel, applied to [0, 1] images: (x - mean) / std
    std: tuple[float, ...] | None = None
    output_kind: Literal["logits", "softmax", "sigmoid"] | None = None
    task: Literal["binary", "multiclass", "multilabel"] | None = None
    class_names: tuple[str, ...] | None = None
    positive_index: int | None = None  # binary task: column of the positive class (two-output models)
    input_name: str | None = None
    output_name: str | None = None  # which output when the model has several
    # the device's locked operating threshold on the positive score (binary), in the score space medaudit reads
    # (probabilities); without it the audit sets one on development images the target was not trained on
    decision_threshold: float | None = Field(default=None, ge=0, le=1)
    # share of the screened population with the condition, for the worst case per 1,000 screened patients (binary);
    # without it the report uses the test set's share and says so
    prevalence: float | None = Field(default=None, gt=0, lt=1)

    @model_validator(mode="after")
    def _normalisation_is_one_of(self) -> "CardFields":
        if self.value_range is not None and (self.mean is not None or self.std is not None):
            raise ValueError("give either value_range or mean/std, not both")
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std go together")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        return self


class TargetSection(Strict):
    """What the scenario says about the target: its card (overrides) and its development split."""

    card: CardFields = CardFields()
    trained_on: Split = "d1"  # the target's development split


class DataSection(Strict):
    """Where the audit data comes from and which task it poses."""

    source: str | None = None  # .npz, a CSV (image folder or DICOM), or medmnist:NAME; --data overrides
    task: Literal["binary", "multiclass", "multilabel"] = "binary"
    positive_labels: tuple[int, ...] | None = None  # binary: source labels counted as positive
    negative_labels: tuple[int, ...] | None = None  # binary: labels counted negative (default: the rest)
    image_size: int | None = Field(default=None, ge=8, le=1024)  # default: the target's input size
    test_limit: int | None = Field(default=None, ge=10)  # stratified seeded subset of the test split
    patient_column: str | None = None  # CSV sources: column with patient ids (patient-level splits)
    origin: str | None = None  # who published the images, from which study (quoted in the report's provenance)
    licence: str | None = None  # the images' licence as their publisher states it


class TrainingSection(Strict):
    """Surrogate training: Adam until validation AUC stops improving (Bortsova et al. 2021, 3.3).

    One epoch is one pass over the training images (at least `min_steps_per_epoch` batches). After each
    epoch the model is scored on its split's fixed validation images; the learning rate is multiplied by
    `lr_decay` every epoch and by `lr_plateau_factor` after `lr_plateau_patience` epochs without a new
    best; training stops after `patience` such epochs (`plateau`) or at `epochs` (`budget`), and keeps
    the best epoch's weights. Epochs without a new best start to count once `min_steps_before_plateau`
    optimiser steps have run. The defaults converge on PneumoniaMNIST at 32 px (measured curves:
    benchmarks/results-convergence.json, docs/random_init_transfer.json).
    """

    epochs: int = Field(default=60, ge=1)  # budget: most epochs run; a model that reaches it is flagged
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)  # Adam's initial learning rate
    lr_decay: float = Field(default=1.0, gt=0, le=1)  # multiplied into the learning rate each epoch
    lr_plateau_factor: float = Field(default=0.5, gt=0, le=1)  # multiplied in after lr_plateau_patience stale epochs
    lr_plateau_patience: int = Field(default=2, ge=1)  # epochs without a new best validation AUC before lowering
    patience: int = Field(default=5, ge=1)  # epochs without a new best validation AUC before stopping
    min_delta_auc: float = Field(default=0.001, ge=0)  # a gain smaller than this is no new best
    min_steps_per_epoch: int = Field(default=10, ge=1)  # small splits still take this many batches per epoch
    # optimiser steps before epochs without a new best count (towards lowering the rate and stopping): on a small
    # split the first epochs' validation AUC is noise (RetinaMNIST d1 validates on 60 images, an epoch is 10 steps;
    # a random-init MobileNetV2 stopped after 60 steps at AUC 0.50 while its training loss still fell)
    min_steps_before_plateau: int = Field(default=200, ge=0)
    balanced_sampling: bool = True
    augment: tuple[Literal["flip", "rotate", "translate", "colour"], ...] = ("flip", "translate")
    val_fraction: float = Field(default=0.1, gt=0, lt=0.5)  # of the split's patients, fixed per split and data seed


class SurrogateRow(Strict):
    """One surrogate of the grid: what the attacker's proxy model shares with the target."""

    arch: str = "same"  # `same` (target card architecture), `different` (another family) or a zoo name
    init: Init = "random"
    data: Split = "d2"
    seed: int = 0  # training seed; several seeds give a spread

    @property
    def row_id(self) -> str:
        """The row a surrogate belongs to: what the attacker knows, without the seed."""
        return f"{self.arch}-{self.init}-{self.data}"


class SurrogateGrid(Strict):
    """A cartesian product of surrogate rows."""

    arch: tuple[str, ...] = ("same",)
    init: tuple[Init, ...] = ("random",)
    data: tuple[Split, ...] = ("d2",)
    seed: tuple[int, ...] = (0,)

    def rows(self) -> list[SurrogateRow]:
        return [
            SurrogateRow(arch=a, init=i, data=d, seed=s)
            for a, i, d, s in itertools.product(self.arch, self.init, self.data, self.seed)
        ]


class Perceptibility(Strict):
    """Which epsilons an attacker may use: those whose adversarial images keep mean SSIM at or above the bound.

    The bound is the attacker's budget, judged at every admissible epsilon. `near_invisible_ssim` names a stricter
    reference the report sets each breaking epsilon beside: Bortsova et al. (2021, 4.1) call epsilon 0.02 already
    visible on radiographs, which at 32-64 px is mean SSIM about 0.98 (docs/perceptibility.md).
    """

    metric: Literal["ssim"] = "ssim"
    min_mean_ssim: float = Field(default=0.8, gt=0, lt=1)  # the bound: lowest mean SSIM an admissible epsilon keeps
    near_invisible_ssim: float = Field(default=0.98, gt=0, lt=1)  # the reference shown beside it (not judged)

    @model_validator(mode="after")
    def _reference_is_stricter(self) -> "Perceptibility":
        if self.near_invisible_ssim < self.min_mean_ssim:
            raise ValueError(
                f"near_invisible_ssim {self.near_invisible_ssim:g} must be at least min_mean_ssim "
                f"{self.min_mean_ssim:g} (the near-invisible reference is the stricter one)"
            )
        return self


class BootstrapSection(Strict):
    resamples: int = Field(default=1000, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)


class Rationale(Strict):
    """Why each acceptance threshold has its value, in the manufacturer's words; quoted in the report."""

    min_relative_auc: str | None = None
    max_adversarial_specific_drop: str | None = None
    min_control_relative_auc: str | None = None


class GateSection(Strict):
    """Acceptance criteria, stated before any result, judged on 95% interval bounds at every admissible epsilon."""

    min_relative_auc: float | None = Field(default=None, gt=0, le=1.5)  # lower bound of adv/clean
    max_adversarial_specific_drop: float | None = Field(default=None, ge=0, le=1)  # upper bound
    min_control_relative_auc: float | None = Field(default=None, gt=0, le=1.5)  # lower bound of control/clean (noise)
    rationale: Rationale = Rationale()
    # the tiers whose results decide the verdict (exit code); the others are reported as bounds beside it
    tiers: tuple[Tier, ...] = ("transfer",)
    # clinical operating point when the card states no `decision_threshold`: the threshold giving this specificity
    # on development images the target was not trained on (never on the test images it is judged on)
    specificity: float = Field(default=0.9, gt=0, lt=1)
    max_regression: float = Field(default=0.05, ge=0, le=1)  # `medaudit compare`: largest allowed worsening

    @field_validator("tiers")
    @classmethod
    def _some_tier(cls, v: tuple) -> tuple:
        if not v:
            raise ValueError("name at least one tier (transfer, query, whitebox)")
        return tuple(dict.fromkeys(v))


class FitnessSection(Strict):
    """When an attacker counts as evidence of robustness: it learned the task, and its perturbations move a model of
    its row that did not make them (another seed, or the row's held-out probe) beyond that model's own control."""

    min_surrogate_auc: float = Field(default=0.6, ge=0, le=1)  # lower interval bound of its clean test AUC
    # lower interval bound of (control - adversarial) AUC on the models of its row it is not made of
    min_transfer_drop: float = Field(default=0.0, ge=0, le=1)


class Scenario(Strict):
    """A threat model and its measurement plan, as read from one YAML file."""

    name: str
    description: str = ""
    goal: Literal["untargeted"] = "untargeted"
    capabilities: Capabilities = Capabilities()
    target: TargetSection = TargetSection()
    data: DataSection = DataSection()
    surrogates: tuple[SurrogateRow, ...] | SurrogateGrid = SurrogateGrid()
    training: TrainingSection = TrainingSection()
    attacks: tuple[AttackSpec, ...] = (FGSM(name="fgsm"), PGD(name="pgd"))
    # L-inf bounds in [-1, 1] units, or `auto`: per attack, search the epsilon where mean SSIM meets the bound and
    # measure a few multiples of it on both sides (each attack's `auto_fractions`)
    epsilons_pm1: tuple[float, ...] | Literal["auto"] = "auto"
    perceptibility: Perceptibility | None = Perceptibility()  # None: every epsilon given is admissible
    # how an adversarial image reaches the target: `source` (default) as a file of the source's bit depth, which is
    # `uint8` for 8-bit sources (rounded to grey levels) and `float` for deeper ones (finer than one grey level);
    # `float`: unrounded arrays, idealised, not deliverable as a file
    delivery: Literal["source", "float", "uint8"] = "source"
    bootstrap: BootstrapSection = BootstrapSection()
    seed: int = 0
    gate: GateSection = GateSection()
    fitness: FitnessSection = FitnessSection()
    risk_acceptability: str | None = None  # the manufacturer's risk acceptability criteria (ISO 14971), quoted
    # extra attackers that average the logits of several surrogates: `seeds` (each row's seeds together)
    # or a list of row ids (every seed of those rows together)
    ensembles: tuple[Literal["seeds"] | tuple[str, ...], ...] = ()
    comparisons: tuple[tuple[str, str], ...] = ()  # row-id pairs: paired bootstrap of (A - B) on the same images
    weights_dir: str | None = None  # local ImageNet weight files for torchvision architectures

    def delivered_at(self, bit_depth: int) -> "Scenario":
        """This scenario with `delivery: source` resolved for a source of `bit_depth` bits per channel."""
        if self.delivery != "source":
            return self
        return self.model_copy(update={"delivery": "uint8" if bit_depth <= GREY_BIT_DEPTH else "float"})

    @field_validator("epsilons_pm1")
    @classmethod
    def _epsilons_in_range(cls, v):
        if v == "auto":
            return v
        if not v:
            raise ValueError("give at least one epsilon, or `auto`")
        if any(not 0 < e <= 1 for e in v):
            raise ValueError("each epsilon must be in (0, 1] (L-inf bound on [-1, 1] images)")
        return tuple(sorted(set(v)))

    @field_validator("attacks")
    @classmethod
    def _at_least_one_attack(cls, v: tuple) -> tuple:
        if not v:
            raise ValueError("give at least one attack")
        return v

    @model_validator(mode="after")
    def _auto_needs_a_bound(self) -> "Scenario":
        if self.epsilons_pm1 == "auto" and self.perceptibility is None:
            raise ValueError(
                "epsilons_pm1: `auto` searches the epsilon where the perceptibility bound binds, and `perceptibility` "
                "is null; give `perceptibility: {metric: ssim, min_mean_ssim: 0.8}` or a list of epsilons"
            )
        return self

    @model_validator(mode="after")
    def _gated_tiers_are_attacked(self) -> "Scenario":
        attacked = {a.tier for a in self.attacks}
        for tier in self.gate.tiers:
            if tier not in attacked:
                raise ValueError(
                    f"gate.tiers names {tier!r} but no attack of that tier is listed in `attacks`; add one "
                    f"({', '.join(sorted(n for n, c in ATTACKS.items() if c.tier == tier))}) or drop the tier"
                )
        return self

    def tier_attacks(self, tier: str) -> tuple:
        """The scenario's attacks of one tier, in their order."""
        return tuple(a for a in self.attacks if a.tier == tier)

    @model_validator(mode="after")
    def _rows_named_exist(self) -> "Scenario":
        known = {row.row_id for row in self.surrogate_rows()}
        named = [(f"ensembles.{i}", r) for i, e in enumerate(self.ensembles) if e != "seeds" for r in e]
        named += [(f"comparisons.{i}", r) for i, pair in enumerate(self.comparisons) for r in pair]
        for where, row in named:
            if row not in known:
                raise ValueError(f"{where}: unknown surrogate row {row!r}; rows are {', '.join(sorted(known))}")
        return self

    def surrogate_rows(self) -> list[SurrogateRow]:
        rows = self.surrogates.rows() if isinstance(self.surrogates, SurrogateGrid) else list(self.surrogates)
        return list(dict.fromkeys(rows))  # drop repeats, keep order

    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file; raise AuditInputError naming file, line or field."""
    path = Path(path)
    if not path.is_file():
        raise AuditInputError(f"{path}: scenario file not found; give an existing YAML file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise AuditInputError(f"{path}:{where}: YAML syntax error: {problem}") from None
    except UnicodeDecodeError:
        raise AuditInputError(f"{path}: not a UTF-8 text file; give a YAML scenario") from None
    if not isinstance(raw, dict):
        raise AuditInputError(f"{path}: a scenario is a YAML mapping (key: value), got {type(raw).__name__}")
    try:
        return Scenario.model_validate(raw)
    except ValidationError as err:
        raise AuditInputError(f"{path}: {describe_validation_error(err)}") from None


def scenario_json_schema() -> dict:
    """JSON Schema of the scenario format, for editors."""
    return Scenario.model_json_schema()
