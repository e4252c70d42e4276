"""Read one modality's committed results: each run's schema-2.0 `results.json` and its per-image score files
(hash-checked against the results), the folder's `run_info.json`, and any old-protocol files left beside them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from protocol import RUN_INFO, SSIM_CURVE, RunInfo, SsimCurves

from medaudit.errors import AuditInputError
from medaudit.files import sha256_file
from medaudit.plan import safe_name
from medaudit.results import AuditResults, CellRecord, read_results

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
    """A target's clean test scores with the labels and patient ids they belong to."""

    y: np.ndarray  # (N,) 0/1
    groups: np.ndarray  # (N,) patient id (or the image's own index) per image
    scores: np.ndarray  # (N,)


@dataclass(frozen=True)
class Run:
    """One audit of the reproduction: a scenario (experiment) run against one target."""

    name: str  # folder name, `<experiment>__<target tag>`
    experiment: str
    folder: Path
    results: AuditResults

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
        a = self._array("per_image/clean.npz")
        return Clean(y=a["labels"], groups=a["groups"], scores=a["scores"])

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


def load(folder: Path) -> Committed:
    runs = tuple(
        Run(name=p.parent.name, experiment=p.parent.name.split("__")[0], folder=p.parent, results=read_results(p))
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
