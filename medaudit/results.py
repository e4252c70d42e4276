"""The run's machine-readable record: typed, versioned, written atomically, read back for reports.

`results.json` is the only thing the report and the gate read, so `medaudit report` re-renders a run
without recomputing (as evidently's Snapshot save/load round trip). `finalize` builds the complete
record; nothing after it changes a number. Every field is typed: no free-form dicts.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from medaudit.errors import AuditInputError, describe_validation_error
from medaudit.files import atomic_write
from medaudit.scenario import AttackSpec, CardFields, Scenario

SCHEMA_VERSION = "2.0"
Outcome = Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR"]
Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR", "PENDING"]
OUTCOMES: tuple[Outcome, ...] = ("PASS", "FAIL", "INCONCLUSIVE", "ERROR")  # the order every output counts them in
MARKS = {"PASS": "✓", "FAIL": "✖", "INCONCLUSIVE": "!", "ERROR": "ERROR", "PENDING": "…"}  # shared by report and gate


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


class OperatingPoint(Record):
    """The target's decisions at the clinical threshold, clean vs under attack vs control noise (binary).

    A positive is a case the target flags (score >= threshold). Flips are split by true label: a true
    positive lost is a diseased case flagged on the clean image and missed on the perturbed one."""

    threshold: float  # score threshold, in the target's probability space
    threshold_rule: str  # how it was set, e.g. "specificity 0.90 on clean test images" or "scenario threshold 0.5"
    sensitivity_clean: float
    specificity_clean: float
    sensitivity_adversarial: float
    specificity_adversarial: float
    sensitivity_control: float
    specificity_control: float
    true_positives_lost: int  # positives flagged clean, missed under attack
    false_positives_created: int  # negatives cleared clean, flagged under attack
    true_positives_lost_control: int  # the same, caused by the control noise
    false_positives_created_control: int
    decision_flips: int  # all decisions the attack changed (either direction, either label)
    decision_flips_control: int


class CellRecord(Record):
    """One cell of the grid: one surrogate (or ensemble), one attack, one epsilon, measured on the target."""

    id: str
    surrogate_id: str  # a surrogate's id, or an ensemble's id (`ens-...`)
    member_ids: tuple[str, ...]  # the surrogates attacked together (one for a plain cell)
    row_id: str  # the scenario row (surrogate knowledge), e.g. `same-random-d2`
    attack_id: str
    attack: AttackSpec  # every attack parameter
    epsilon_pm1: float  # L-inf bound, [-1, 1] units
    epsilon_grey_levels: float  # the same bound in 8-bit grey levels (x 127.5)
    auc_clean: IntervalRecord
    auc_adversarial: IntervalRecord
    auc_control: IntervalRecord
    relative_auc: IntervalRecord  # adversarial / clean
    relative_auc_control: IntervalRecord  # control / clean
    adversarial_specific_drop: IntervalRecord  # control - adversarial
    per_class_auc_clean: tuple[float, ...]
    per_class_auc_adversarial: tuple[float, ...]
    surrogate_auc_clean: IntervalRecord  # the surrogate's own test AUC (ensemble: of the averaged members)
    surrogate_auc_whitebox: float  # the surrogate's AUC under its own attack (white-box check)
    sibling_relative_auc: float | None  # mean over the row's other seeds of their AUC on these images / clean AUC
    whitebox_flag: bool  # True: transfer beat white-box by > 0.05, which signals a bug
    operating_point: OperatingPoint | None  # binary tasks only
    mean_ssim: float
    mean_ssim_control: float
    max_abs_delta_pm1: float  # largest |x_adv - x| reached, [-1, 1] units (<= epsilon_pm1)
    target_queries: int  # images the target scored for this cell (adversarial + control)


class EpochRecord(Record):
    """One training epoch of a surrogate."""

    epoch: int
    train_loss: float
    val_auc: float
    learning_rate: float


class WhiteboxCheck(Record):
    """One attack at the chosen epsilon: does it break its own surrogate, and does it move the row's other seeds?"""

    attack_id: str
    epsilon_pm1: float
    auc_whitebox: float  # surrogate AUC on its own adversarial images
    bound: float  # the check passes when auc_whitebox <= bound
    sibling_relative_auc: (
        float | None
    )  # the row's other seeds' AUC on these images / their clean AUC (None: no sibling)
    sibling_bound: float  # ... must be at most this: an attack that moves no copy of its own model transfers nothing
    passed: bool


class SurrogateFitness(Record):
    """Whether a surrogate is evidence: it learned (clean AUC floor) and its own attacks break it."""

    fit: bool
    test_auc_floor: float  # lower interval bound of the clean test AUC must reach this
    whitebox: tuple[WhiteboxCheck, ...]
    reasons: tuple[str, ...]  # why it is unfit (empty when fit)


class SurrogateResult(Record):
    """A trained surrogate (or an ensemble of them), how it learned and whether it is fit."""

    id: str
    row_id: str
    arch: str
    family: str
    init: str
    split: str
    seed: int  # training seed (-1 for an ensemble)
    member_ids: tuple[str, ...]  # ensemble members (empty for one model)
    n_train: int
    n_val: int
    val_auc: float
    test_auc: IntervalRecord  # clean test AUC with its bootstrap interval
    epochs_run: int
    best_epoch: int
    stop_reason: str  # `plateau` (validation AUC stopped improving) or `budget` (epoch budget ran out)
    learning_curve: tuple[EpochRecord, ...]
    train_seconds: float
    from_cache: bool
    atlas: tuple[str, ...]  # MITRE ATLAS technique ids this row exercises
    fitness: SurrogateFitness | None  # set by finalize


class EpsilonChoice(Record):
    """Per attack: the SSIM curve over epsilon, which epsilons the bound admits, and whether it bound."""

    attack_id: str
    curve: tuple[tuple[float, float], ...]  # (epsilon_pm1, mean SSIM over surrogates' adversarial images)
    bound: float
    admissible_epsilons_pm1: tuple[float, ...]  # every epsilon whose mean SSIM >= bound; criteria are judged at each
    chosen_epsilon_pm1: float | None  # the largest admissible one (examples and plots), None if none
    bound_binds: bool  # False: every epsilon in the grid passed, so the grid, not perceptibility, limited epsilon
    reason: str


class GateRule(Record):
    """One acceptance criterion applied to one scenario row and attack, judged at its worst admissible epsilon."""

    id: str  # stable: `<row>/<attack>/<criterion-key>` (`<row>/worst-over-attacks/<key>` per row), cited by risk files
    criterion_id: str  # e.g. `C-REL-AUC`
    threat_id: str  # `T-<row>`: the threat (scenario row) of the risk file
    control_id: str  # the suggested control of the risk file, e.g. `CTL-IMAGE-INTEGRITY`
    rule: str  # e.g. "relative AUC, lower 95% bound >= 0.80"
    row_id: str
    attack_id: str
    surrogate_id: str | None  # the surrogate (seed) judged: the one most harmful to the target
    epsilon_pm1: float | None  # where the worst case occurred
    value: IntervalRecord | None
    status: Outcome
    message: str


class WorstCase(Record):
    """The admissible cell with the lowest adversarial AUC, and two plain sentences about it."""

    row_id: str
    surrogate_id: str
    attack_id: str
    epsilon_pm1: float
    epsilon_grey_levels: float
    auc_clean: IntervalRecord
    auc_adversarial: IntervalRecord
    relative_auc: IntervalRecord
    statement: str


class SeedSpread(Record):
    """Per row, attack and epsilon: how much the target's relative AUC varies over the row's surrogates."""

    row_id: str
    attack_id: str
    epsilon_pm1: float
    n_surrogates: int
    relative_auc_min: float
    relative_auc_median: float
    relative_auc_max: float
    most_harmful_surrogate_id: str  # lowest relative AUC: the surrogate an attacker would keep


class PairedComparison(Record):
    """Row A minus row B on the same test images (paired bootstrap): adversarial and relative AUC."""

    row_a: str
    row_b: str
    attack_id: str
    epsilon_pm1: float
    difference_auc_adversarial: IntervalRecord  # A - B
    difference_relative_auc: IntervalRecord  # A - B


class Example(Record):
    """One test image under attack, for the report's figure (8-bit PNGs, base64)."""

    row_id: str
    attack_id: str
    epsilon_pm1: float
    label: tuple[int, ...] | int
    original_png: str
    adversarial_png: str
    perturbation_png: str  # amplified: grey 128 = no change
    amplification: float
    score_clean: float
    score_adversarial: float


class LoadCheck(Record):
    """What the target's load check saw on the audit images."""

    images: int
    output_columns: int
    deterministic_max_diff: float  # largest difference between two runs on the same input
    passed: bool


class TargetRecord(Record):
    """The audited model: file, contract (card) with each field's source, and its clean AUC."""

    path: str
    name: str
    sha256: str
    card: CardFields
    card_sources: dict[str, str]  # card field -> where it came from (graph, metadata, sidecar, scenario, default)
    load_check: LoadCheck
    device: str  # onnxruntime provider / torch device the target ran on
    clean_auc: float


class DataRecord(Record):
    """Where the audit images came from and how they were prepared and split."""

    source: str  # as given (a path or medmnist:NAME)
    origin: str  # who published the images and from which study, in words (or "not stated")
    licence: str  # the images' licence as their publisher states it (or "not stated")
    resolved_path: str  # the file actually read
    sha256: str  # of the source file(s)
    split_ids_sha256: str
    patient_level: bool
    split_rule: str  # how development/test and d1/d2/... were made, in words
    label_mapping: str  # which source labels count as which class
    task: str
    class_names: tuple[str, ...]
    image_size: int  # after resampling to the target's input
    resampling: str  # source size -> image_size, in words
    channels: int
    split_sizes: dict[str, int]  # split name -> images
    test_size: int
    test_positives: int | None
    test_selection: str
    notes: tuple[str, ...]


class PackageVersion(Record):
    name: str
    version: str


class EnvironmentRecord(Record):
    packages: tuple[PackageVersion, ...]
    python: str
    platform: str
    device: str
    gpu: str | None
    cpu_threads: int
    executor: str  # local | ray


class PerImageFile(Record):
    """A per-image score file under `per_image/`, cited and hashed so a third party can check it."""

    path: str  # relative to the results folder
    sha256: str


class Provenance(Record):
    """What a third party needs to re-run the audit and get the same results."""

    medaudit_version: str
    code_commit: str  # git commit of the medaudit source, or why it is unknown
    command: str
    scenario_path: str
    scenario_file_sha256: str  # of the YAML file as written
    scenario_canonical_sha256: str  # of the validated scenario as canonical JSON (sorted keys, defaults filled)
    started_at: str
    finished_at: str | None


class Timings(Record):
    load_seconds: float
    train_seconds: float
    cells_seconds: float
    finalize_seconds: float
    total_seconds: float


class ExecutionStats(Record):
    """What this run computed and what it took from the cache (a resumed run recomputes nothing finished)."""

    surrogates_trained: int
    surrogates_cached: int
    cell_jobs_computed: int
    cell_jobs_cached: int


class AuditResults(Record):
    schema_version: str = SCHEMA_VERSION
    status: Literal["running", "complete"]
    provenance: Provenance
    scenario: Scenario  # as resolved
    target: TargetRecord
    data: DataRecord
    environment: EnvironmentRecord
    surrogates: tuple[SurrogateResult, ...] = ()
    cells: tuple[CellRecord, ...] = ()
    epsilon_choice: tuple[EpsilonChoice, ...] = ()
    gate: tuple[GateRule, ...] = ()
    verdict: Verdict = "PENDING"
    worst_case: WorstCase | None = None
    seed_spread: tuple[SeedSpread, ...] = ()
    comparisons: tuple[PairedComparison, ...] = ()
    examples: tuple[Example, ...] = ()
    per_image: tuple[PerImageFile, ...] = ()
    target_queries: int = 0
    timings: Timings | None = None
    execution: ExecutionStats | None = None


def count_outcomes(rules: tuple[GateRule, ...]) -> dict[str, int]:
    """Rules per outcome, in `OUTCOMES` order: the one count that junit.xml, summary.md and the PDF all show."""
    return {outcome: sum(r.status == outcome for r in rules) for outcome in OUTCOMES}


def threshold_text(x: float) -> str:
    """A threshold for a rule text: at least two decimals, no trailing noise (0.8 -> 0.80, 0.825 -> 0.825)."""
    s = f"{x:.3f}".rstrip("0")
    return s + "0" * max(0, 2 - len(s.split(".")[1]))


def fmt_interval(iv: IntervalRecord | None) -> str:
    """`point (low, high)` to three decimals; an undefined interval says so."""
    if iv is None:
        return "—"
    if not all(math.isfinite(v) for v in (iv.low, iv.high)):
        return f"{iv.point:.3f} (interval undefined)"
    return f"{iv.point:.3f} ({iv.low:.3f}, {iv.high:.3f})"


def write_results(results: AuditResults, path: Path) -> None:
    """Write atomically: a temp file in the same folder, then rename over the old one."""
    atomic_write(path, results.model_dump_json(indent=1))


def read_results(path: str | Path) -> AuditResults:
    path = Path(path)
    if not path.is_file():
        raise AuditInputError(f"{path}: results file not found; give the results.json a `medaudit run` wrote")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AuditInputError(f"{path}: not valid JSON ({exc})") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise AuditInputError(
            f"{path}: results schema version {version!r}; this medaudit reads {SCHEMA_VERSION}; "
            "re-run the audit with this version"
        )
    try:
        return AuditResults.model_validate(raw)
    except ValidationError as err:
        raise AuditInputError(f"{path}: {describe_validation_error(err)}") from None
