"""Read one modality's committed results: each run's schema-2.0 `results.json` and its per-image score files
(hash-checked against the results), the folder's `run_info.json`, and any old-protocol files left beside them.

The committed files hold scores only. The labels and patient ids of a run's test images are a slice of the data
file, which may not be committed, so they are re-read from the data file the run used (the file's sha256 and the
split hash the results record must both match): rendering needs the data folder, as running did.
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
from protocol import RUN_INFO, SSIM_CURVE, RunInfo, SsimCurves

from medaudit.data import select
from medaudit.errors import AuditInputError
from medaudit.files import sha256_file
from medaudit.plan import safe_name
from medaudit.results import AuditResults, CellRecord, SurrogateResult, read_results
from medaudit.sources import SourceFiles, read_npz

CLEAN_SCORES = "per_image/clean.npz"  # the target's clean scores; the only array the committed file keeps
PAPER_PGD = {"step_pm1": 0.01, "iterations": 20, "random_start": False, "diversity_prob": 0.0, "ti_kernel": 0}


def attack_kind(cell: CellRecord) -> str:
    """`fgsm`, `pgd` (the paper's: step 0.01, 20 iterations, no random start, no DI/TI), `mifgsm`, or `other`."""
    attack = cell.attack
    if attack.name == "pgd":
        same = all(getattr(attack, k) == v for k, v in PAPER_PGD.items())
        return "pgd" if same else "other"
    return attack.name


@dataclass(frozen=True)
class Clean:
    """A target's clean test scores with the labels and patient ids they belong to (re-read from the data file)."""

    y: np.ndarray  # (N,) 0/1
    groups: np.ndarray  # (N,) patient id (or the image's own index) per image
    scores: np.ndarray  # (N,)


@lru_cache(maxsize=1)
def _source(path: Path) -> SourceFiles:
    return read_npz(path)  # one modality's runs share a file; reading it once per modality keeps a render fast


def reread_labels(folder: Path, results: AuditResults, data_file: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, patient ids) of the run's test images, re-read from its data file and checked to be its images."""
    if data_file is None or not data_file.is_file():
        raise AuditInputError(
            f"{data_file}: data file not found; the per-image files in {folder} hold scores only (the labels and "
            "patient ids are part of the data and are not committed), so they are re-read from the data file the "
            "run used: give tables.py --data DIR, a folder holding it"
        )
    loaded = _source(data_file)
    if loaded.sha256 != results.data.sha256:
        raise AuditInputError(
            f"{data_file}: sha256 {loaded.sha256[:12]}… differs from the {results.data.sha256[:12]}… the run in "
            f"{folder} read; give the data file it was made from"
        )
    chosen = select(
        loaded,
        results.scenario.data,
        seed=results.scenario.seed,
        where=str(data_file),
        class_names=results.target.card.class_names or (),
    )
    if chosen.split_ids_sha256 != results.data.split_ids_sha256:
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
    results: AuditResults
    data_file: Path | None  # the data file the run read, for its test labels and patient ids

    @property
    def arch(self) -> str:
        return self.results.target.card.architecture or "unknown"

    @property
    def init(self) -> str:
        return self.results.target.card.init or "unknown"

    @property
    def split(self) -> str:
        return self.results.scenario.target.trained_on

    def _array(self, relative: str) -> dict[str, np.ndarray]:
        cited = {f.path: f.sha256 for f in self.results.per_image}
        path = self.folder / relative
        if relative not in cited:
            raise AuditInputError(f"{path}: results.json cites no such per-image file")
        if not path.is_file() or sha256_file(path) != cited[relative]:
            raise AuditInputError(f"{path}: missing, or its sha256 differs from the one results.json records")
        with np.load(path) as data:
            return {k: data[k] for k in data.files}

    @cached_property
    def clean(self) -> Clean:
        scores = self._array(CLEAN_SCORES)["scores"]
        y, groups = reread_labels(self.folder, self.results, self.data_file)
        if y.shape != scores.shape:
            raise AuditInputError(f"{self.folder / CLEAN_SCORES}: {len(scores)} scores for {len(y)} test images")
        return Clean(y=y, groups=groups, scores=scores)

    def scores(self, cell: CellRecord) -> tuple[np.ndarray, np.ndarray]:
        """(adversarial, control) scores of the target on the cell's images."""
        a = self._array(f"per_image/{safe_name(cell.id)}.npz")
        return a["adversarial_scores"], a["control_scores"]

    @property
    def bootstrap_groups(self) -> np.ndarray | None:
        """Patient ids when the split is patient-level (resample patients), else None (resample images)."""
        return self.clean.groups if self.results.data.patient_level else None

    def cells(
        self, *, row: str | None = None, kind: str | None = None, eps: float | None = None, attacker: str | None = None
    ) -> list[CellRecord]:
        return [
            c
            for c in self.results.cells
            if (row is None or c.row_id == row)
            and (kind is None or attack_kind(c) == kind)
            and (eps is None or math.isclose(c.epsilon_pm1, eps, abs_tol=1e-9))
            and (attacker is None or c.surrogate_id == attacker)
        ]


@dataclass(frozen=True)
class Committed:
    """One modality's folder: its schema-2.0 runs, its run info, and old-protocol files left beside them."""

    folder: Path
    runs: tuple[Run, ...]
    run_info: RunInfo | None
    old_files: tuple[Path, ...]  # schema-1.0 results JSON of the old protocol, not rendered
    ssim: SsimCurves | None = None  # FGSM's SSIM past the paper's grid (epsilon_examples.py), if measured

    def run(self, experiment: str, arch: str, init: str) -> Run | None:
        return next((r for r in self.runs if (r.experiment, r.arch, r.init) == (experiment, arch, init)), None)

    def archs(self, experiment: str | None = None) -> list[str]:
        """Target architectures present, in first-seen order."""
        return list(dict.fromkeys(r.arch for r in self.runs if experiment is None or r.experiment == experiment))


def load(folder: Path, data_file: Path | None = None) -> Committed:
    """The modality's committed results; `data_file` (its data) is read only when a run's labels are needed."""
    runs = tuple(
        Run(
            name=p.parent.name,
            experiment=p.parent.name.split("__")[0],
            folder=p.parent,
            results=read_results(p),
            data_file=data_file,
        )
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
    return Committed(
        folder=folder, runs=runs, run_info=info, old_files=tuple(sorted(folder.glob("*__*.json"))), ssim=ssim
    )


def same_images(a: Run, b: Run) -> None:
    """Two runs compared image by image must have scored the same test images (labels and ids agree)."""
    if a is b:
        return
    if not (np.array_equal(a.clean.y, b.clean.y) and np.array_equal(a.clean.groups, b.clean.groups)):
        raise AuditInputError(
            f"{a.folder} and {b.folder}: different test images (labels or ids differ); a paired comparison needs "
            "both runs made with the same data settings"
        )


@dataclass(frozen=True)
class Version:
    """One trained model behind a model id, and the runs that audited it."""

    fingerprint: str  # the ONNX file's sha256 for a target; a hash of the learning curve for a surrogate
    auc: float  # a target's clean AUC, a surrogate's clean test AUC, on this version
    runs: tuple[str, ...]  # run folder names, in load order


@dataclass(frozen=True)
class Retrained:
    """A model id that names different trained models in different runs of one modality.

    Training is deterministic for one machine and thread count, but CPU kernels differ between machine types (and
    thread counts, CPU and GPU), so a model trained again after the cache was lost can have other weights under the
    same id. Each run audits the models it trained or loaded; the document names where a modality has two."""

    kind: Literal["target", "surrogate"]
    id: str  # the target's tag (`arch-init-split`) or the surrogate's id
    versions: tuple[Version, ...]  # two or more


def surrogate_fingerprint(surrogate: SurrogateResult) -> str:
    """What tells two trainings of one surrogate id apart: its validation AUC, epochs and learning curve."""
    learned = (surrogate.val_auc, surrogate.epochs_run, surrogate.best_epoch, surrogate.learning_curve)
    return hashlib.sha256(json.dumps([learned[:3], [e.model_dump() for e in learned[3]]]).encode()).hexdigest()


def versions(c: Committed) -> dict[tuple[str, str], tuple[Version, ...]]:
    """(kind, id) -> the trained models that id names across the modality's runs: targets by their exported file,
    single surrogates by their learning curve (an ensemble is its members)."""
    found: dict[tuple[str, str], dict[str, tuple[float, list[str]]]] = {}
    for run in c.runs:
        tag = run.name.split("__", 1)[1]
        models = [("target", tag, run.results.target.sha256, run.results.target.clean_auc)]
        models += [
            ("surrogate", s.id, surrogate_fingerprint(s), s.test_auc.point)
            for s in run.results.surrogates
            if not s.member_ids
        ]
        for kind, model_id, fingerprint, auc in models:
            seen = found.setdefault((kind, model_id), {})
            seen.setdefault(fingerprint, (auc, []))[1].append(run.name)
    return {
        key: tuple(Version(fingerprint=f, auc=auc, runs=tuple(names)) for f, (auc, names) in seen.items())
        for key, seen in found.items()
    }


def retrained(c: Committed) -> list[Retrained]:
    """Every model id of the modality that names more than one trained model, targets first."""
    split = [Retrained(kind, model_id, v) for (kind, model_id), v in versions(c).items() if len(v) > 1]
    return sorted(split, key=lambda r: (r.kind != "target", r.id))
