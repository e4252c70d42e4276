"""The run's machine-readable record: typed, versioned, written atomically, read back for reports.

`results.json` is the only thing the report and the gate read, so `medaudit report` re-renders a run
without recomputing (as evidently's Snapshot save/load round trip).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from medaudit.errors import AuditInputError, describe_validation_error
from medaudit.files import atomic_write

SCHEMA_VERSION = "1.0"


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IntervalRecord(Record):
    """A point estimate with its bootstrap percentile interval."""

    point: float
    low: float
    high: float
    confidence: float
    resamples: int
    degenerate: int  # resamples with one class only (AUC undefined), excluded and counted


class CellRecord(Record):
    """One cell of the grid: one surrogate, one attack, one epsilon, measured on the target."""

    id: str
    surrogate_id: str
    row_id: str  # the scenario row (surrogate knowledge), e.g. `same-random-d2`
    attack_id: str
    attack: dict  # every attack parameter
    epsilon_pm1: float  # L-inf bound, [-1, 1] units
    epsilon_grey_levels: float  # the same bound in 8-bit grey levels (x 127.5)
    auc_clean: IntervalRecord
    auc_adversarial: IntervalRecord
    auc_control: IntervalRecord
    relative_auc: IntervalRecord  # adversarial / clean
    relative_auc_control: IntervalRecord  # control / clean
    adversarial_specific_drop: IntervalRecord  # control - adversarial
    per_class_auc_clean: list[float]
    per_class_auc_adversarial: list[float]
    surrogate_auc_clean: float  # the surrogate's own test AUC
    surrogate_auc_whitebox: float  # the surrogate's AUC under its own attack (white-box sanity check)
    whitebox_flag: bool  # True: transfer beat white-box, which signals a bug
    flips_pos_to_neg: int  # target decisions at 0.5 flipped by the attack
    flips_neg_to_pos: int
    flips_control: int  # decisions flipped by the control noise
    sensitivity_clean: float | None  # at the threshold giving the gate's specificity on clean images
    sensitivity_adversarial: float | None
    threshold_at_specificity: float | None
    mean_ssim: float
    mean_ssim_control: float
    max_abs_delta: float
    target_queries: int  # images the target scored for this cell (adversarial + control)
    seconds: float


class SurrogateResult(Record):
    id: str
    row_id: str
    arch: str
    family: str
    init: str
    split: str
    seed: int
    n_train: int
    n_val: int
    val_auc: float
    test_auc: float
    epochs_run: int
    best_epoch: int
    train_seconds: float
    from_cache: bool
    atlas: list[str]  # MITRE ATLAS technique ids this row exercises


class EpsilonChoice(Record):
    """Per attack: the SSIM curve over epsilon and the epsilon chosen under the bound."""

    attack_id: str
    curve: list[tuple[float, float]]  # (epsilon_pm1, mean SSIM over surrogates' adversarial images)
    bound: float
    chosen_epsilon_pm1: float | None
    reason: str


class GateRule(Record):
    """One acceptance criterion applied to one scenario row and attack at the chosen epsilon."""

    id: str
    rule: str  # e.g. "relative AUC, lower 95% bound >= 0.80"
    row_id: str
    attack_id: str
    epsilon_pm1: float | None
    value: IntervalRecord | None
    status: Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR"]
    message: str


class Example(Record):
    """One test image under attack, for the report's figure (8-bit PNGs, base64)."""

    row_id: str
    attack_id: str
    epsilon_pm1: float
    label: list[int] | int
    original_png: str
    adversarial_png: str
    perturbation_png: str  # amplified: grey 128 = no change
    amplification: float
    score_clean: float
    score_adversarial: float


class AuditResults(Record):
    schema_version: str = SCHEMA_VERSION
    status: Literal["running", "complete"]
    scenario_path: str
    scenario: dict  # the scenario as resolved
    scenario_sha256: str
    command: str
    target: dict  # path, sha256, card, card sources, load checks, device
    data: dict  # source, sha256, split sizes, split ids sha256, patient_level, notes
    surrogates: list[SurrogateResult] = []
    cells: list[CellRecord] = []
    epsilon_choice: list[EpsilonChoice] = []
    gate: list[GateRule] = []
    verdict: Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR", "PENDING"] = "PENDING"
    worst_case: dict | None = None
    examples: list[Example] = []
    target_queries: int = 0
    environment: dict = {}
    timings: dict = {}
    started_at: str = ""
    finished_at: str | None = None


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
        raise AuditInputError(f"{path}: results schema version {version!r}; this medaudit reads {SCHEMA_VERSION}; "
                              "re-run the audit with this version")
    try:
        return AuditResults.model_validate(raw)
    except ValidationError as err:
        raise AuditInputError(f"{path}: {describe_validation_error(err)}") from None
