"""The run's machine-readable record: typed, versioned, written atomically, read back for reports.

`results.json` is the only thing the report and the gate outputs read, so `medaudit report` re-renders a run
without recomputing (as evidently's Snapshot save/load round trip). `finalize` and `gate.judge` build the
complete record; nothing after them changes a number. Every field is typed: no free-form dicts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from medaudit.attacks import Tier
from medaudit.core import AuditInputError, atomic_write, describe_validation_error
from medaudit.records.breaking import BreakingEpsilon
from medaudit.records.criteria import Outcome
from medaudit.records.harm import SampleSize, WorstCase
from medaudit.records.measurements import (
    BoundCheck,
    CellRecord,
    EpsilonSearch,
    IntervalRecord,
    LoadCheck,
    Record,
    SurrogateResult,
    TierStatus,
)
from medaudit.scenario import CardFields, Scenario

SCHEMA_VERSION = "3.3"
Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR", "PENDING"]
OUTCOMES: tuple[Outcome, ...] = ("PASS", "FAIL", "INCONCLUSIVE", "ERROR")  # the order every output counts them in
MARKS = {"PASS": "✓", "FAIL": "✖", "INCONCLUSIVE": "!", "ERROR": "ERROR", "PENDING": "…", "NOT RUN": "–"}


class EpsilonChoice(Record):
    """Per attack: the measured SSIM curve, which epsilons the bound admits, and how the grid was placed."""

    attack_id: str
    tier: Tier
    curve: tuple[tuple[float, float], ...]  # (epsilon_pm1, mean SSIM over the attack's cells)
    bound: float | None  # the scenario's min_mean_ssim (None: no perceptibility bound, every epsilon admissible)
    near_invisible_ssim: float | None  # the stricter reference the report sets breaking epsilons beside
    admissible_epsilons_pm1: tuple[float, ...]  # every epsilon whose mean SSIM >= bound; criteria are judged at each
    chosen_epsilon_pm1: float | None  # the largest admissible one (examples and plots), None if none
    bound_epsilon_pm1: float | None  # where the bound binds: the search's estimate (auto) or the largest admissible
    near_invisible_epsilon_pm1: float | None  # where the reference SSIM is met (auto search; None otherwise)
    bound_binds: bool  # False: every epsilon measured passed, so the grid, not perceptibility, limited epsilon
    search: EpsilonSearch | None  # how `auto` placed the grid (None for an explicit grid)
    reason: str


class GateRule(Record):
    """One acceptance criterion applied to one threat (a scenario row, or a bound tier) and one attack, judged at
    its worst admissible epsilon, with the breaking epsilon of the attacker judged."""

    id: str  # stable: `<row>/<attack>/<criterion-key>` (`<row>/worst-over-attacks/<key>` per row), cited by risk files
    tier: Tier
    criterion_id: str  # e.g. `C-REL-AUC`
    threat_id: str  # `T-<row>`: the threat (scenario row or tier) of the risk file
    control_id: str  # the suggested control of the risk file, e.g. `CTL-IMAGE-INTEGRITY`
    rule: str  # e.g. "relative AUC, lower 95% bound >= 0.80"
    row_id: str
    attack_id: str
    attacker_id: str | None  # the attacker judged: the fit one most harmful to the target
    epsilon_pm1: float | None  # where the worst case occurred
    value: IntervalRecord | None
    status: Outcome
    message: str
    breaking: BreakingEpsilon | None  # the judged attacker's epsilon* for this criterion


class TierVerdict(Record):
    """One tier's verdict (one line of the verdict card per criterion lives in `VerdictRow`)."""

    tier: Tier
    gated: bool  # True: this tier decides the exit code; False: reported as a bound beside the verdict
    status: Outcome | Literal["NOT RUN"]
    masking: str | None  # set when white-box did worse than a transfer or query attack at the same epsilon
    order: BoundCheck | None  # white-box: its worst comparison with a query or transfer cell (None: none to compare)
    unverified: str | None  # white-box: why it is not a verified bound, the failed checks (None: verified, or not)
    statement: str  # one sentence: what this attacker achieves and where


class VerdictRow(Record):
    """One line of page 1: a tier and a criterion, with its result, a short reason and what to do next."""

    tier: Tier
    criterion_id: str
    gated: bool
    status: Outcome | Literal["NOT RUN"]
    threat_id: str  # the threat judged worst for this tier and criterion
    result: str  # e.g. "ε* 0.012 (0.010–0.015), 0.14 × the bound's ε"
    reason: str  # at most 15 words
    next_step: str


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
    """One test image whose decision the attack flipped in the harmful direction (8-bit PNGs, base64)."""

    row_id: str
    attacker_id: str
    attack_id: str
    epsilon_pm1: float
    image_index: int  # among the audit's test images; every example shows another image
    label: tuple[int, ...] | int
    direction: str  # "positive pushed negative" (a missed case) or "negative pushed positive" (a false alarm)
    original_png: str
    adversarial_png: str
    perturbation_png: str  # amplified: grey 128 = no change
    amplification: float
    score_clean: float
    score_adversarial: float
    threshold: float  # the clinical threshold the decision flipped across


class CriterionChange(Record):
    """One tier and criterion, the previous release against this one: each judged worst case, and their paired
    difference on the same test images (this release minus the previous; negative: worse for at-least criteria)."""

    tier: Tier
    criterion_id: str
    base_rule_id: str  # the previous release's judged rule (its worst for this tier and criterion)
    new_rule_id: str
    base_value: IntervalRecord
    new_value: IntervalRecord
    difference: IntervalRecord  # new - base, paired bootstrap over the shared test images (patients)
    base_breaking: BreakingEpsilon | None
    new_breaking: BreakingEpsilon | None
    status: Outcome  # PASS: no worsening beyond max_regression; FAIL: a worsening beyond it; INCONCLUSIVE: straddles
    message: str


class ReleaseComparison(Record):
    """This release against the previous one (`medaudit compare`, or `run --baseline`)."""

    base_results_path: str
    base_results_sha256: str
    base_target_name: str
    base_target_sha256: str
    base_verdict: Verdict
    max_regression: float  # the largest worsening of a criterion's value allowed (scenario gate.max_regression)
    changes: tuple[CriterionChange, ...]
    verdict: Outcome  # the worst change's status


class Anomaly(Record):
    """A result the audit flags as needing a human look before the report is submitted."""

    id: str  # e.g. `A-MASKING`
    text: str


class Readiness(Record):
    """Whether the record can go into a submission as it is, and why not."""

    ready: bool
    reasons: tuple[str, ...]  # each a reason it is not (empty when ready)


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
    threshold: float | None  # the clinical operating threshold the decisions are counted at (binary)
    threshold_rule: str  # where it came from: the card's locked threshold or unseen development images


class DataRecord(Record):
    """Where the audit images came from and how they were prepared and split."""

    source: str  # as given (a path or medmnist:NAME)
    origin: str | None  # who published the images and from which study (None: the scenario does not say)
    licence: str | None  # the images' licence as their publisher states it (None: the scenario does not say)
    resolved_path: str  # the file actually read
    sha256: str  # of the source file(s)
    split_ids_sha256: str
    patient_level: bool  # patient ids exist: splits and bootstrap resamples are by patient
    split_rule: str  # how development/test and d1/d2/... were made, in words
    label_mapping: str  # which source labels count as which class
    task: str
    class_names: tuple[str, ...]
    bit_depth: int  # bits per channel of the source's files (8: PNG, JPEG, MedMNIST, 8-bit DICOM)
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
    processor: str
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
    code_committed: bool  # the package's own files equal that commit (outputs written into the tree do not count)
    command: str
    scenario_path: str
    scenario_file_sha256: str  # of the YAML file as written
    scenario_canonical_sha256: str  # of the validated scenario as canonical JSON (sorted keys, defaults filled)
    started_at: str
    finished_at: str | None


class Timings(Record):
    load_seconds: float
    train_seconds: float
    search_seconds: float
    cells_seconds: float  # transfer cells
    bounds_seconds: float  # query and white-box tiers
    bisection_seconds: float  # measuring epsilon* between grid points
    finalize_seconds: float
    total_seconds: float


class ExecutionStats(Record):
    """What this run computed and what it took from the cache (a resumed run recomputes nothing finished)."""

    surrogates_trained: int
    surrogates_cached: int
    cell_jobs_computed: int
    cell_jobs_cached: int
    bisection_jobs_computed: int
    bisection_jobs_cached: int


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
    tiers: tuple[TierStatus, ...] = ()  # the bound tiers the scenario names: ran, or why not
    epsilon_choice: tuple[EpsilonChoice, ...] = ()
    gate: tuple[GateRule, ...] = ()
    tier_verdicts: tuple[TierVerdict, ...] = ()
    verdict_rows: tuple[VerdictRow, ...] = ()
    verdict: Verdict = "PENDING"
    worst_case: WorstCase | None = None  # over every tier
    sample_sizes: tuple[SampleSize, ...] = ()  # per tier: what its test images can show
    seed_spread: tuple[SeedSpread, ...] = ()
    comparisons: tuple[PairedComparison, ...] = ()
    examples: tuple[Example, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()
    readiness: Readiness | None = None
    release_comparison: ReleaseComparison | None = None  # against the previous release, when one was given
    per_image: tuple[PerImageFile, ...] = ()
    target_queries: int = (
        0  # every image the record's evidence sent to the target (checks, references, searches, cells), cached or not
    )
    timings: Timings | None = None
    execution: ExecutionStats | None = None


def count_outcomes(rules: tuple[GateRule, ...]) -> dict[str, int]:
    """Rules per outcome, in `OUTCOMES` order: the one count that junit.xml, summary.md and the PDF all show."""
    return {outcome: sum(r.status == outcome for r in rules) for outcome in OUTCOMES}


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
        raise AuditInputError(f"{path}: not valid JSON ({str(exc)[:120]}); the file is truncated or damaged") from None
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
