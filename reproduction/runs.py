"""One modality's committed runs: each run's record (`record.read_record`, schema 2.0 or 3.0), its per-image score
files (hash-checked against the record), the folder's `run_info.json` and `ssim_curve.json`.

The committed files hold scores only. The labels and patient ids of a run's test images are a slice of the data
file, which may not be committed, so they are re-read from the data file the run used (the file's sha256 and the
split hash the record holds must both match): rendering needs the data folder, as running did.

Rows are named as the findings name them: a 3.0 run made under the fixed rule names its `different` row by the
architecture written into the scenario (`mobilenet_v2-random-d1` against a Lite0 target); `Run.row` maps it back to
`different-random-d1`, and `Run.fixed_different` says whether a `different` row used the fixed architecture.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from medaudit.core.errors import AuditInputError
from medaudit.core.files import safe_name, sha256_file
from medaudit.data.audit_data import select
from medaudit.data.sources import SourceFiles, read_npz
from medaudit.scenario.threat_model import DataSection
from reproduction.arm_epsilon import ArmEpsilon, arm_epsilon
from reproduction.protocol import DIFFERENT, RUN_INFO, SSIM_CURVE, RunInfo, SsimCurves
from reproduction.record import CellView, RunRecord, SurrogateView, read_record

CLEAN_SCORES = "per_image/clean.npz"
PAPER_PGD = {"step_pm1": 0.01, "iterations": 20, "random_start": False, "diversity_prob": 0.0, "ti_kernel": 0}
PAPER_EPSILON = 0.02  # the paper's ε for Tables 3-5 (section 4.1)


def attack_kind(cell: CellView) -> str:
    """`fgsm`, `pgd` (the paper's: step 0.01, 20 iterations, no random start, no DI/TI), `mifgsm`, `apgd`,
    `square`, or `other`."""
    if cell.attack.name == "pgd":
        return "pgd" if all(getattr(cell.attack, k) == v for k, v in PAPER_PGD.items()) else "other"
    return cell.attack.name


@dataclass(frozen=True)
class Clean:
    """A target's clean test scores with the labels and patient ids they belong to (re-read from the data file)."""

    y: np.ndarray  # (N,) 0/1
    groups: np.ndarray  # (N,) patient id (or the image's own index) per image
    scores: np.ndarray  # (N,)


@lru_cache(maxsize=1)
def _source(path: Path) -> SourceFiles:
    return read_npz(path)  # one modality's runs share a file: read it once per modality


def reread_labels(folder: Path, record: RunRecord, data_file: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, patient ids) of the run's test images, re-read from its data file and checked to be its images."""
    if data_file is None or not data_file.is_file():
        raise AuditInputError(
            f"{data_file}: data file not found; the per-image files in {folder} hold scores only (the labels and "
            "patient ids are part of the data and are not committed), so they are re-read from the data file the "
            "run used: give --data DIR, a folder holding it"
        )
    loaded = _source(data_file)
    if loaded.sha256 != record.data.sha256:
        raise AuditInputError(
            f"{data_file}: sha256 {loaded.sha256[:12]}… differs from the {record.data.sha256[:12]}… the run in "
            f"{folder} read; give the data file it was made from"
        )
    chosen = select(
        loaded,
        DataSection(**record.scenario.data.model_dump()),
        seed=record.scenario.seed,
        where=str(data_file),
        class_names=record.target.card.class_names or (),
    )
    if chosen.split_ids_sha256 != record.data.split_ids_sha256:
        raise AuditInputError(
            f"{folder}/results.json: its scenario's data section, applied to {data_file}, picks other images than "
            "the run recorded (split ids sha256 differs); the results and the data file do not belong together"
        )
    return chosen.test_y, chosen.test_groups


@dataclass(frozen=True)
class Run:
    """One audit of the reproduction: a scenario (experiment) run against one target."""

    name: str  # folder name, `<experiment>__<target tag>`
    experiment: str
    folder: Path
    record: RunRecord
    data_file: Path | None  # the data file the run read, for its test labels and patient ids

    @property
    def arch(self) -> str:
        return self.record.target.card.architecture or "unknown"

    @property
    def init(self) -> str:
        return self.record.target.card.init or "unknown"

    @property
    def split(self) -> str:
        return self.record.scenario.target.trained_on

    @property
    def schema(self) -> str:
        return self.record.schema_version

    def row(self, row_id: str) -> str:
        """The row as the findings name it: the fixed rule's architecture row of a 3.0 run is `different-...`."""
        arch, _, rest = row_id.partition("-")
        return f"different-{rest}" if arch == DIFFERENT.get(self.arch) else row_id

    def row_arch(self, row: str) -> str | None:
        """The architecture of the single surrogates of `row` (named as the findings name it)."""
        return next((s.arch for s in self.record.surrogates if self.row(s.row_id) == row and not s.member_ids), None)

    def fixed_different(self, row: str) -> bool:
        """Whether `row`'s surrogates are the fixed rule's architecture: every row but a `different` one is."""
        return not row.startswith("different-") or self.row_arch(row) == DIFFERENT.get(self.arch)

    def _array(self, relative: str) -> dict[str, np.ndarray]:
        cited = {f.path: f.sha256 for f in self.record.per_image}
        path = self.folder / relative
        if relative not in cited:
            raise AuditInputError(f"{path}: results.json cites no such per-image file")
        if not path.is_file() or sha256_file(path) != cited[relative]:
            raise AuditInputError(f"{path}: missing, or its sha256 differs from the one results.json records")
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    @cached_property
    def clean(self) -> Clean:
        scores = self._array(CLEAN_SCORES)["scores"]
        y, groups = reread_labels(self.folder, self.record, self.data_file)
        if y.shape != scores.shape:
            raise AuditInputError(f"{self.folder / CLEAN_SCORES}: {len(scores)} scores for {len(y)} test images")
        return Clean(y=y, groups=groups, scores=scores)

    def scores(self, cell: CellView) -> tuple[np.ndarray, np.ndarray]:
        """(adversarial, control) scores of the target on every test image (a transfer cell scores them all)."""
        a = self._array(f"per_image/{safe_name(cell.id)}.npz")
        if "image_indices" in a and len(a["image_indices"]) != len(self.clean.y):
            raise AuditInputError(f"{self.folder}: cell {cell.id} scored a subset of the test images")
        return a["adversarial_scores"], a["control_scores"]

    @cached_property
    def _epsilon_stars(self) -> dict[tuple[str, str], ArmEpsilon]:
        return {}  # (attacker id, attack kind) -> its ε*, filled by `epsilon_star`

    def epsilon_star(self, attacker: str, kind: str) -> ArmEpsilon:
        """An attacker's ε* for one attack kind on this run's grid (`arm_epsilon`), from the target's scores at every
        ε the run measured it at; computed once per run, as several findings read the same arm."""
        key = (attacker, kind)
        if key not in self._epsilon_stars:
            cells = sorted(self.cells(attacker=attacker, kind=kind), key=lambda c: c.epsilon_pm1)
            scores = [self.scores(c) for c in cells]
            self._epsilon_stars[key] = arm_epsilon(
                self.clean.y,
                self.bootstrap_groups,
                self.clean.scores,
                [c.epsilon_pm1 for c in cells],
                [a for a, _ in scores],
                [n for _, n in scores],
            )
        return self._epsilon_stars[key]

    @property
    def bootstrap_groups(self) -> np.ndarray | None:
        """Patient ids when the split is patient-level (resample patients), else None (resample images)."""
        return self.clean.groups if self.record.data.patient_level else None

    def cells(
        self, *, row: str | None = None, kind: str | None = None, eps: float | None = None, attacker: str | None = None
    ) -> list[CellView]:
        return [
            c
            for c in self.record.cells
            if c.tier == "transfer"
            and (row is None or self.row(c.row_id) == row)
            and (kind is None or attack_kind(c) == kind)
            and (eps is None or math.isclose(c.epsilon_pm1, eps, abs_tol=1e-9))
            and (attacker is None or c.attacker_id == attacker)
        ]

    def epsilons(self, kind: str) -> list[float]:
        """The ε grid the run measured `kind` at (transfer tier), ascending."""
        return sorted({c.epsilon_pm1 for c in self.cells(kind=kind)})

    def nearest(self, kind: str, eps: float = PAPER_EPSILON) -> float | None:
        """The grid's ε nearest `eps`: the paper's 0.02 itself in a 2.0 run, the nearest `auto` grid point in 3.0."""
        grid = self.epsilons(kind)
        return min(grid, key=lambda e: (abs(e - eps), e)) if grid else None

    def surrogates(self, row: str) -> list[SurrogateView]:
        return [s for s in self.record.surrogates if self.row(s.row_id) == row and s.role == "attacker"]


@dataclass(frozen=True)
class ModalityRuns:
    """One modality's folder: its runs, its run info and FGSM's SSIM curve past the paper's grid."""

    folder: Path
    runs: tuple[Run, ...]
    run_info: RunInfo | None
    ssim: SsimCurves | None = None

    def run(self, experiment: str, arch: str, init: str) -> Run | None:
        return next((r for r in self.runs if (r.experiment, r.arch, r.init) == (experiment, arch, init)), None)

    def archs(self, experiment: str | None = None) -> list[str]:
        """Target architectures present, in first-seen order."""
        return list(dict.fromkeys(r.arch for r in self.runs if experiment is None or r.experiment == experiment))


def load(folder: Path, data_file: Path | None = None) -> ModalityRuns:
    """The modality's committed runs; `data_file` (its data) is read only when a run's labels are needed."""
    runs = tuple(
        Run(p.parent.name, p.parent.name.split("__")[0], p.parent, read_record(p), data_file)
        for p in sorted(folder.glob("*__*/results.json"))
        if not p.parent.name.endswith(".partial")  # a copy `reproduce.collect` did not finish
    )
    info_path = folder / RUN_INFO
    info = None
    if info_path.is_file():
        raw = json.loads(info_path.read_text())
        info = RunInfo.model_validate(raw) if raw.get("layout") == "reproduction-2" else None
    ssim_path = folder / SSIM_CURVE
    ssim = SsimCurves.model_validate_json(ssim_path.read_text()) if ssim_path.is_file() else None
    return ModalityRuns(folder=folder, runs=runs, run_info=info, ssim=ssim)


def same_images(a: Run, b: Run) -> None:
    """Two runs compared image by image must have scored the same test images (labels and ids agree)."""
    if a is b:
        return
    if not (np.array_equal(a.clean.y, b.clean.y) and np.array_equal(a.clean.groups, b.clean.groups)):
        raise AuditInputError(
            f"{a.folder} and {b.folder}: different test images (labels or ids differ); a paired comparison needs "
            "both runs made with the same data settings"
        )


# ---------------------------------------------------------------- one id, two trained models
@dataclass(frozen=True)
class Version:
    """One trained model behind a model id, and the runs that audited it."""

    fingerprint: str  # the ONNX file's sha256 for a target; a hash of the learning curve for a surrogate
    auc: float  # a target's clean AUC, a surrogate's clean test AUC, on this version
    runs: tuple[str, ...]  # run folder names, in load order


@dataclass(frozen=True)
class Retrained:
    """A model id that names different trained models in different runs of one modality: training is
    deterministic for one machine and thread count, but kernels differ between machine types, so a model trained
    again after its cache was lost can have other weights under the same id."""

    kind: Literal["target", "surrogate"]
    id: str  # the target's tag (`arch-init-split`) or the surrogate's id
    versions: tuple[Version, ...]  # two or more


def surrogate_fingerprint(s: SurrogateView) -> str:
    """What tells two trainings of one surrogate id apart: its validation AUC, epochs and learning curve."""
    learned = [s.val_auc, s.epochs_run, s.best_epoch, [e.model_dump() for e in s.learning_curve]]
    return hashlib.sha256(json.dumps(learned).encode()).hexdigest()


def versions(c: ModalityRuns) -> dict[tuple[str, str], tuple[Version, ...]]:
    """(kind, id) -> the trained models that id names across the modality's runs: targets by their exported file,
    single surrogates by their learning curve (an ensemble is its members)."""
    found: dict[tuple[str, str], dict[str, tuple[float, list[str]]]] = {}
    for run in c.runs:
        tag = run.name.split("__", 1)[1]
        models = [("target", tag, run.record.target.sha256, run.record.target.clean_auc)]
        models += [
            ("surrogate", s.id, surrogate_fingerprint(s), s.test_auc.point if s.test_auc else float("nan"))
            for s in run.record.surrogates
            if not s.member_ids
        ]
        for kind, model_id, fingerprint, auc in models:
            seen = found.setdefault((kind, model_id), {})
            seen.setdefault(fingerprint, (auc, []))[1].append(run.name)
    return {
        key: tuple(Version(fingerprint=f, auc=auc, runs=tuple(names)) for f, (auc, names) in seen.items())
        for key, seen in found.items()
    }


def retrained(c: ModalityRuns) -> list[Retrained]:
    """Every model id of the modality that names more than one trained model, targets first."""
    split = [Retrained(kind, model_id, v) for (kind, model_id), v in versions(c).items() if len(v) > 1]
    return sorted(split, key=lambda r: (r.kind != "target", r.id))
