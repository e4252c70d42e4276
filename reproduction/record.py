"""The reproduction's own narrow, typed view of a run's `results.json`, read from schema 2.0 and 3.0 alike.

Each model reads only the fields the document needs and ignores the rest (`extra="ignore"`), so the committed
2.0 runs and new 3.0 runs render side by side. Where the schemas differ the view maps 2.0 onto 3.0's names:
a cell's `surrogate_id` is its `attacker_id` and its tier is `transfer`; 2.0's one fitness record per surrogate
becomes one per attack; 3.0's `transfer.drop_beyond_control` is flattened to `transfer_drop`; 2.0's provenance
records an uncommitted tree as `+dirty` in the commit, 3.0 as `code_committed: false`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from medaudit.core.errors import AuditInputError

SCHEMAS = ("2.0", "3.0", "3.1", "3.2", "3.3")  # 3.1: white-box checks; 3.2: worst case, sample sizes; 3.3: ε* bisection


class View(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class IntervalView(View):
    point: float
    low: float
    high: float
    confidence: float = 0.95


class AttackView(View):
    """The attack's parameters that tell the paper's attacks apart (`runs.attack_kind`)."""

    name: str
    step_pm1: float | None = None
    iterations: int | None = None
    random_start: bool = False
    diversity_prob: float = 0.0
    ti_kernel: int = 0


class CellView(View):
    id: str
    tier: str = "transfer"  # 2.0 had the transfer tier only
    attacker_id: str = Field(validation_alias=AliasChoices("attacker_id", "surrogate_id"))
    member_ids: tuple[str, ...] = ()
    row_id: str
    attack_id: str
    attack: AttackView
    epsilon_pm1: float
    auc_clean: IntervalView
    auc_adversarial: IntervalView
    auc_control: IntervalView
    relative_auc: IntervalView
    adversarial_specific_drop: IntervalView  # control - adversarial, on the target
    mean_ssim: float
    surrogate_auc_clean: IntervalView | None = None  # the attacker's own clean test AUC
    surrogate_auc_whitebox: float | None = None  # the attacker's own AUC on its own adversarial images
    transfer_drop: IntervalView | None = None  # 3.0: drop beyond control on the row's models outside the attacker
    sibling_relative_auc: float | None = None  # 2.0: the row's other seeds' relative AUC (a point only)

    @model_validator(mode="before")
    @classmethod
    def _flatten_transfer(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("transfer"), dict):
            raw = {**raw, "transfer_drop": raw["transfer"].get("drop_beyond_control")}
        return raw


class FitnessView(View):
    attack_id: str
    fit: bool
    reasons: tuple[str, ...] = ()


class EpochView(View):
    epoch: int
    val_auc: float
    train_loss: float = 0.0


class SurrogateView(View):
    id: str
    row_id: str
    arch: str
    init: str
    split: str
    seed: int
    member_ids: tuple[str, ...] = ()
    role: str = "attacker"
    val_auc: float
    test_auc: IntervalView | None = None
    test_auc_floor: float = 0.0  # the run's floor on the lower bound of its clean test AUC
    epochs_run: int
    best_epoch: int
    stop_reason: str
    learning_curve: tuple[EpochView, ...] = ()
    fitness: tuple[FitnessView, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _fitness_per_attack(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        fitness = raw.get("fitness")
        if isinstance(fitness, dict):  # 2.0: one record, its white-box checks per attack
            checks = fitness.get("whitebox") or ()
            per_attack = [{"attack_id": w["attack_id"], "fit": bool(w.get("passed")), "reasons": ()} for w in checks]
            return {**raw, "fitness": per_attack, "test_auc_floor": fitness.get("test_auc_floor", 0.0)}
        if isinstance(fitness, list) and fitness:  # 3.0: one record per attack, each with its floor
            return {**raw, "test_auc_floor": fitness[0].get("test_auc_floor", 0.0)}
        return raw

    @property
    def fit(self) -> bool:
        return bool(self.fitness) and all(f.fit for f in self.fitness)


class CardView(View):
    architecture: str | None = None
    init: str | None = None
    class_names: tuple[str, ...] | None = None


class TargetView(View):
    sha256: str
    clean_auc: float
    card: CardView


class DataSectionView(View):
    """The scenario's data section as `medaudit.data.audit_data.select` reads it: which images, which labels."""

    task: str = "binary"
    positive_labels: tuple[int, ...] | None = None
    negative_labels: tuple[int, ...] | None = None
    test_limit: int | None = None


class TrainingView(View):
    epochs: int
    learning_rate: float
    lr_plateau_factor: float = 1.0
    lr_plateau_patience: int = 0
    patience: int
    min_steps_before_plateau: int = 0
    augment: tuple[str, ...] = ()
    balanced_sampling: bool = True
    val_fraction: float = 0.1


class TargetSectionView(View):
    trained_on: str = "d1"


class PerceptibilityView(View):
    min_mean_ssim: float = 0.8


class BootstrapView(View):
    resamples: int = 1000
    confidence: float = 0.95


class ScenarioView(View):
    name: str
    target: TargetSectionView = TargetSectionView()
    data: DataSectionView = DataSectionView()
    seed: int = 0
    epsilons_pm1: tuple[float, ...] | str = "auto"
    training: TrainingView
    perceptibility: PerceptibilityView | None = PerceptibilityView()
    bootstrap: BootstrapView = BootstrapView()


class DataView(View):
    source: str
    sha256: str
    split_ids_sha256: str
    patient_level: bool
    label_mapping: str
    image_size: int
    resampling: str
    split_sizes: dict[str, int]
    test_size: int
    test_positives: int | None = None
    test_selection: str


class ProvenanceView(View):
    code_commit: str
    code_committed: bool | None = None  # 3.0; 2.0 wrote `+dirty` into the commit instead
    command: str = ""
    started_at: str = ""
    finished_at: str | None = None

    @property
    def code(self) -> str:
        """The commit as recorded, short, with `+dirty` where the tree had uncommitted changes."""
        if self.code_commit.startswith("unknown"):
            return "unknown"  # e.g. "unknown: installed from a package, not a git checkout"
        commit, _, rest = self.code_commit.partition("+")
        dirty = rest == "dirty" or self.code_committed is False
        return f"{commit[:10]}{'+dirty' if dirty else ''}"


class EnvironmentView(View):
    platform: str = ""
    processor: str | None = None  # 3.0
    device: str = "cpu"
    gpu: str | None = None
    cpu_threads: int = 1


class EpsilonChoiceView(View):
    attack_id: str
    tier: str = "transfer"
    curve: tuple[tuple[float, float], ...]
    bound: float | None = None
    chosen_epsilon_pm1: float | None = None
    bound_epsilon_pm1: float | None = None  # 3.0: where the SSIM bound binds
    bound_binds: bool = False


class BreakingView(View):
    criterion_id: str
    attacker_id: str
    attack_id: str
    epsilon_pm1: float | None
    low_pm1: float | None
    high_pm1: float | None
    largest_tried_pm1: float
    bound_epsilon_pm1: float | None = None
    holds_at_pm1: float | None = None  # 3.3: the bracket's low end, the largest measured ε below ε* that holds


class GateRuleView(View):
    id: str
    tier: str = "transfer"
    criterion_id: str
    rule: str
    row_id: str
    attack_id: str
    status: str
    breaking: BreakingView | None = None  # 3.0


class TierVerdictView(View):
    tier: str
    gated: bool
    status: str
    statement: str


class PerImageView(View):
    path: str
    sha256: str


class RunRecord(View):
    """One run's `results.json` as the document reads it."""

    schema_version: str
    provenance: ProvenanceView
    scenario: ScenarioView
    target: TargetView
    data: DataView
    environment: EnvironmentView
    surrogates: tuple[SurrogateView, ...] = ()
    cells: tuple[CellView, ...] = ()
    epsilon_choice: tuple[EpsilonChoiceView, ...] = ()
    gate: tuple[GateRuleView, ...] = ()
    tier_verdicts: tuple[TierVerdictView, ...] = ()  # 3.0
    verdict: str = "PENDING"
    per_image: tuple[PerImageView, ...] = ()


def read_record(path: Path) -> RunRecord:
    """A committed run's record, schema 2.0 or 3.0; any other version, or a damaged file, is refused by name."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AuditInputError(f"{path}: not a readable results file ({str(exc)[:120]})") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version not in SCHEMAS:
        raise AuditInputError(f"{path}: results schema {version!r}; the reproduction reads {' and '.join(SCHEMAS)}")
    try:
        return RunRecord.model_validate(raw)
    except ValidationError as err:
        raise AuditInputError(f"{path}: {str(err).splitlines()[0]} ({err.error_count()} fields)") from None
