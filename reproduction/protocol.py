"""What the reproduction runs and where its results live: the modalities, the experiments and their targets, the
fixed rule for `different`, the display names, and the records of `run_info.json`. Shared by `reproduce` (runs)
and `document` (renders); no torch here, so rendering needs none.

Layout: `docs/reproduction/<modality>/<experiment>__<arch>-<init>-<split>/results.json` with the `per_image/*.npz`
score files it cites, and `docs/reproduction/<modality>/run_info.json`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "reproduction"
DATA_ENV = "MEDAUDIT_DATA"  # folder holding the data files; default ../shared/data beside the repository
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DATA_HELP = f"folder holding the data files (default ${DATA_ENV}, else {DEFAULT_DATA})"
RUN_INFO = "run_info.json"
SSIM_CURVE = "ssim_curve.json"


def data_folder(given: Path | None) -> Path:
    """The data folder: --data, else $MEDAUDIT_DATA, else ../shared/data beside the repository."""
    return given or Path(os.environ.get(DATA_ENV) or DEFAULT_DATA)


# ---------------------------------------------------------------- display names: the one place they are spelt
ARCH_NAMES = {"efficientnet_lite0": "Lite0", "mobilenet_v2": "MNv2", "resnet18": "RN18", "densenet121": "DN121"}
ARCH_TITLES = {
    "efficientnet_lite0": "EfficientNet-Lite0",
    "mobilenet_v2": "MobileNetV2",
    "resnet18": "ResNet-18",
    "densenet121": "DenseNet-121",
}
INIT_NAMES = {"imagenet": "IN", "random": "R"}
ATTACK_NAMES = {"fgsm": "FGSM", "pgd": "PGD", "mifgsm": "MI-FGSM", "apgd": "APGD", "square": "Square"}


def arch_name(arch: str) -> str:
    return ARCH_NAMES.get(arch, arch)


def target_label(arch: str, init: str, split: str = "d1") -> str:
    """e.g. `Lite0 R (d1)`."""
    return f"{arch_name(arch)} {INIT_NAMES.get(init, init)} ({split})"


# ---------------------------------------------------------------- the experiments
ARCHS = ("efficientnet_lite0", "mobilenet_v2")  # the targets' architectures
# `different` is fixed in advance, as the paper's design fixed it (Inception-v3 <-> DenseNet-121): each target
# architecture is the other's different architecture, in every experiment, modality and initialisation, never
# chosen by measured attack strength
DIFFERENT: dict[str, str] = {"efficientnet_lite0": "mobilenet_v2", "mobilenet_v2": "efficientnet_lite0"}
# scenario (scenarios/<name>.yaml) -> the targets it runs against: (architecture, init); each target is trained on
# the scenario's `target.trained_on` split (d1, or d1/10 for small_data)
EXPERIMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "perturbation_degree": tuple((a, "random") for a in ARCHS),
    "pretraining": tuple((a, i) for a in ARCHS for i in ("imagenet", "random")),
    "data_disparity": tuple((a, "random") for a in ARCHS),
    "small_data": tuple((a, i) for a in ARCHS for i in ("imagenet", "random")),
}


def target_tag(arch: str, init: str, split: str, seed: int | None = None) -> str:
    """A target's name: `seed` is given only for a target trained from another seed than the reproduction's."""
    return f"{arch}-{init}-{split.replace('/', 'over')}" + ("" if seed is None else f"-s{seed}")


def run_name(experiment: str, arch: str, init: str, split: str, seed: int | None = None) -> str:
    """The folder of one audit: `<experiment>__<target tag>`."""
    return f"{experiment}__{target_tag(arch, init, split, seed)}"


@dataclass(frozen=True)
class Modality:
    """One data set the reproduction runs on, and the paper's application its numbers are placed beside."""

    key: str  # command-line name and results folder
    title: str  # the section heading: the source, never the size a run resampled it to (the runs say that)
    file: str  # the data file's name in the data folder (never copied into the repository)
    positive_labels: tuple[int, ...] | None  # source labels counted positive (None: the file's 0/1 labels)
    negative_labels: tuple[int, ...] | None  # source labels counted negative (None: every other label)
    class_names: tuple[str, str]  # (negative, positive)
    image_size: int  # default --image-size: the smallest input every architecture takes, or the file's own size
    paper_column: Literal["Oph", "Rad", "Path"]  # the paper's application (TABLES.md) set beside it


MODALITIES: dict[str, Modality] = {
    m.key: m
    for m in (
        Modality(
            "pneumonia",
            "Chest X-ray (PneumoniaMNIST, 28 px source, image-level splits)",
            "pneumoniamnist.npz",
            None,
            None,
            ("normal", "pneumonia"),
            32,
            "Rad",
        ),
        Modality(
            "retina",
            "Fundus photographs (RetinaMNIST, referable DR, 28 px source, image-level splits)",
            "retinamnist.npz",
            (2, 3, 4),
            None,
            ("no referable DR", "referable DR"),
            32,
            "Oph",
        ),
        Modality(
            "derma",
            "Dermoscopy (DermaMNIST JPEG-compressed once, melanoma vs nevus, 28 px source, image-level splits)",
            "dermamnist_jpeg.npz",
            (4,),
            (5,),
            ("nevus", "melanoma"),
            32,
            "Path",
        ),
        Modality(
            "kermany",
            "Chest X-ray (Kermany et al., 128 px source, patient-level splits)",
            "chestxray_kermany_128.npz",
            None,
            None,
            ("normal", "pneumonia"),
            128,
            "Rad",
        ),
    )
}


# ---------------------------------------------------------------- run_info.json
class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Settings(Record):
    """What the command line changed from the shipped scenarios (every run in a folder shares them)."""

    image_size: int  # px, square
    test_limit: int | None  # stratified seeded subset of the test split; None: every test image


class Machine(Record):
    """Where a run ran."""

    device: str  # cpu | cuda
    torch: str
    cuda: str | None  # the CUDA version torch was built with, None for a CPU build
    gpu: str | None  # the GPU's name when device is cuda
    cpu_threads: int
    # the processor and torch's CPU kernel level, e.g. "AMD EPYC (AVX512)": a model trained on another kind of
    # machine has other weights under the same id (runs.retrained); None in runs recorded before it was kept
    cpu: str | None = None


class TargetTraining(Record):
    """How a run's target learned: with the scenario's training section, as its surrogates did."""

    id: str  # the trained model's id (experiments that share a target share it)
    n_train: int
    n_val: int
    val_auc: float  # best validation AUC (the kept epoch's)
    epochs_run: int
    best_epoch: int
    stop_reason: str  # plateau: validation AUC stopped improving; budget: the epoch budget ran out
    train_seconds: float  # when it was trained (a cached target keeps its first training's time)
    from_cache: bool


class RunEntry(Record):
    seconds: float  # wall time: target training (or its cache), the audit, the copy
    finished_at: str
    machine: Machine
    target: TargetTraining


class RunInfo(Record):
    """`run_info.json`: the settings a modality's results were made with and what each run took."""

    layout: Literal["reproduction-2"] = "reproduction-2"
    modality: str
    settings: Settings
    settings_why: str | None = None  # why the settings differ from the defaults (reproduce --why), if they do
    runs: dict[str, RunEntry]  # run folder name -> its time and machine
    total_seconds: float  # sum over runs


class SsimCurve(Record):
    """Mean SSIM of FGSM images past the paper's grid, for one perturbation_degree target's seed-0 surrogate."""

    target: str  # the target's tag (`target_tag`); the surrogate is its perturbation_degree seed 0
    surrogate_id: str
    attack: Literal["fgsm"]  # the least subtle attack at equal ε (lowest SSIM), so its crossing comes first
    test_images: int
    bound: float  # the scenario's min_mean_ssim
    curve: tuple[tuple[float, float], ...]  # (ε in [-1, 1] units, mean SSIM over the test images)
    first_below_bound: float | None  # the smallest ε whose mean SSIM is below the bound; None: none in the curve


class SsimCurves(Record):
    """`ssim_curve.json`: where the SSIM bound would bind, per perturbation_degree target (epsilon_examples)."""

    modality: str
    settings: Settings
    curves: tuple[SsimCurve, ...]
