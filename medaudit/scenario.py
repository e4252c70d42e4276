"""Threat-model scenarios: YAML in, a validated `Scenario` out, every error naming file and field.

The vocabulary follows NIST AI 100-2 (goal, knowledge, capabilities) and the paper behind medaudit
(Bortsova et al., MedIA 2021): epsilons are L-inf bounds on images scaled to [-1, 1].
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medaudit.errors import AuditInputError, describe_validation_error

SPLITS = ("d1", "d2", "d2/2", "d1/10", "full")
INITS = ("imagenet", "random")


class Strict(BaseModel):
    """Unknown keys are errors; records are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Capabilities(Strict):
    """What the attacker can do (NIST AI 100-2 'capabilities')."""

    queries_to_target: Literal[0] = 0  # transfer attacker: never queries the target
    input_edit: Literal["inference_time"] = "inference_time"
    norm: Literal["linf"] = "linf"


class CardFields(Strict):
    """The target card: the input/output contract of the deployed model (see target.py)."""

    name: str | None = None
    intended_use: str | None = None  # as the manufacturer states it; quoted in the report
    architecture: str | None = None  # needed to resolve a surrogate `arch: same`
    init: Literal["imagenet", "random"] | None = None  # how the target was initialised, if known
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
    trained_on: Literal["d1", "d2", "d2/2", "d1/10", "full"] = "d1"  # the target's development split


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
    init: Literal["imagenet", "random"] = "random"
    data: Literal["d1", "d2", "d2/2", "d1/10", "full"] = "d2"
    seed: int = 0  # training seed; several seeds give a spread

    @property
    def row_id(self) -> str:
        """The row a surrogate belongs to: what the attacker knows, without the seed."""
        return f"{self.arch}-{self.init}-{self.data}"


class SurrogateGrid(Strict):
    """A cartesian product of surrogate rows."""

    arch: tuple[str, ...] = ("same",)
    init: tuple[Literal["imagenet", "random"], ...] = ("random",)
    data: tuple[Literal["d1", "d2", "d2/2", "d1/10", "full"], ...] = ("d2",)
    seed: tuple[int, ...] = (0,)

    def rows(self) -> list[SurrogateRow]:
        return [
            SurrogateRow(arch=a, init=i, data=d, seed=s)
            for a, i, d, s in itertools.product(self.arch, self.init, self.data, self.seed)
        ]


class FGSM(Strict):
    """Fast Gradient Sign Method (Goodfellow et al. 2015): one step of size epsilon."""

    name: Literal["fgsm"]


class TransferTricks(Strict):
    """Input diversity and translation invariance, the transfer boosters of the iterative attacks.

    Both are off by default. `diversity_prob` is DI's p (Xie et al. 2019): each step, with probability p,
    the surrogate sees the image shrunk to a random side and padded back at a random place. `ti_kernel` is
    TI's Gaussian kernel side in pixels (Dong et al. 2019), odd; the paper's 15 at 299 px is about 3 at
    64 px; 0 turns TI off.
    """

    diversity_prob: float = Field(default=0.0, ge=0, le=1)  # probability of the DI transform per step
    ti_kernel: int = Field(default=0, ge=0)  # Gaussian kernel side in pixels, odd; 0 = off

    @field_validator("ti_kernel")
    @classmethod
    def _odd_kernel(cls, v: int) -> int:
        if v and v % 2 == 0:
            raise ValueError(f"ti_kernel {v} must be odd (the kernel is centred on a pixel); use {v + 1} or 0")
        return v


class PGD(TransferTricks):
    """Projected Gradient Descent (Madry et al. 2018); the paper uses step 0.01, 20 iterations."""

    name: Literal["pgd"]
    step_pm1: float = Field(default=0.01, gt=0)  # step size in [-1, 1] image units
    iterations: int = Field(default=20, ge=1)
    random_start: bool = False


class MIFGSM(TransferTricks):
    """Momentum Iterative FGSM (Dong et al. 2018), a stronger transfer attack."""

    name: Literal["mifgsm"]
    step_pm1: float = Field(default=0.01, gt=0)
    iterations: int = Field(default=10, ge=1)
    decay: float = Field(default=1.0, ge=0)  # momentum decay factor mu


AttackSpec = Annotated[Union[FGSM, PGD, MIFGSM], Field(discriminator="name")]


class Perceptibility(Strict):
    """How epsilon is chosen: the largest epsilon whose mean SSIM stays at or above the bound."""

    metric: Literal["ssim"] = "ssim"
    min_mean_ssim: float = Field(default=0.9, gt=0, le=1)


class BootstrapSection(Strict):
    resamples: int = Field(default=1000, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)


class GateSection(Strict):
    """Acceptance criteria, stated before any result, judged on 95% interval bounds at every admissible epsilon."""

    min_relative_auc: float | None = Field(default=None, gt=0, le=1.5)  # lower bound of adv/clean
    max_adversarial_specific_drop: float | None = Field(default=None, ge=0, le=1)  # upper bound
    min_control_relative_auc: float | None = Field(default=None, gt=0, le=1.5)  # lower bound of control/clean (noise)
    specificity: float = Field(default=0.9, gt=0, lt=1)  # clinical operating point: specificity on clean images
    threshold: float | None = Field(default=None, ge=0, le=1)  # or a fixed score threshold (overrides specificity)


class FitnessSection(Strict):
    """When a surrogate counts as evidence: it learned, and its own attacks break it (white-box check)."""

    min_surrogate_auc: float = Field(default=0.6, ge=0, le=1)  # lower interval bound of its clean test AUC
    max_whitebox_auc: float = Field(default=0.5, ge=0, le=1)  # its AUC under each attack, white-box, at most this
    # another seed of the same row, attacked with this surrogate's images, keeps at most this fraction of its clean
    # AUC: depthwise surrogates break themselves yet move no copy of themselves (docs/random_init_transfer.md)
    max_sibling_relative_auc: float = Field(default=0.97, gt=0, le=1.5)


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
    epsilons_pm1: tuple[float, ...] = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06)  # L-inf, [-1,1] units
    perceptibility: Perceptibility = Perceptibility()
    delivery: Literal["float", "uint8"] = "float"  # uint8: adversarial images round-trip 8 bits
    bootstrap: BootstrapSection = BootstrapSection()
    seed: int = 0
    gate: GateSection = GateSection()
    fitness: FitnessSection = FitnessSection()
    # extra attackers that average the logits of several surrogates: `seeds` (each row's seeds together)
    # or a list of row ids (every seed of those rows together)
    ensembles: tuple[Literal["seeds"] | tuple[str, ...], ...] = ()
    comparisons: tuple[tuple[str, str], ...] = ()  # row-id pairs: paired bootstrap of (A - B) on the same images
    weights_dir: str | None = None  # local ImageNet weight files for torchvision architectures

    @field_validator("epsilons_pm1")
    @classmethod
    def _epsilons_in_range(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v:
            raise ValueError("give at least one epsilon")
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
