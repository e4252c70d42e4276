"""Audit data: images in the canonical space ([-1, 1] float32 NCHW), the task's labels, and patient-level splits.

`medaudit.data.sources` reads and checks a source's files (MedMNIST `.npz`, a CSV of PNG/JPEG or DICOM files,
`medmnist:NAME` fetched by `medaudit.data.medmnist`) into a development part (train + val) and a test part.
Here the scenario's task is applied, images go to canonical space, and the development set is split
as in Bortsova et al. (2021), Table 1: disjoint halves d1 / d2, d1/10 (a tenth of d1) and d2/2 (half
of d2) — by patient when patient ids exist.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from medaudit.core import AuditInputError, pm1_from_grey
from medaudit.data.csv_folder import read_csv
from medaudit.data.sources import SOURCE_SPLIT_RULE, SourceFiles, SourcePart, read_npz
from medaudit.scenario import DataSection

# file suffix -> reader (path, data section, image size, seed) -> SourceFiles; tests enrol every entry
SOURCE_FORMATS: dict[str, Callable[[Path, DataSection, int, int], SourceFiles]] = {
    ".npz": lambda path, section, size, seed: read_npz(path),  # stored size; resampled below
    ".csv": read_csv,  # image files of any size, resized as they are read
}


@dataclass(frozen=True)
class Images:
    """Images with labels: x (N, C, H, W) float32 in [-1, 1]; y (N,) 0/1 for binary or (N, K) 0/1."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray  # (N,) patient id per image; the image's own index where none exist

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: np.ndarray) -> "Images":
        return Images(self.x[index], self.y[index], self.groups[index])


@dataclass(frozen=True)
class AuditData:
    """Development and test images, the named development splits, and provenance."""

    development: Images
    test: Images
    splits: dict[str, np.ndarray]  # split name -> indices into `development`
    patient_level: bool  # False: no patient ids, splits are image-level (the report says so)
    source: str
    source_sha256: str
    task: str
    class_names: tuple[str, ...]
    resolved_path: str  # the file actually read (a medmnist:NAME source resolves into the cache)
    resampling: str  # source image size -> canonical size, in words
    bit_depth: int  # bits per channel of the source's files: the depth an attacker delivers an edited image at
    test_selection: str = "all"  # how the test images were chosen
    split_rule: str = SOURCE_SPLIT_RULE  # how development and test were separated, and d1/d2/... made from development
    notes: tuple[str, ...] = field(default=())

    @property
    def split_ids_sha256(self) -> str:
        return split_ids_sha256(self.splits, self.test.groups)

    def split(self, name: str) -> Images:
        return self.development.subset(self.splits[name])


def split_ids_sha256(splits: dict[str, np.ndarray], test_groups: np.ndarray) -> str:
    """Which images each development split and the test set hold: the audit's cache keys and its record name it."""
    h = hashlib.sha256()
    for name in sorted(splits):
        h.update(name.encode())
        h.update(np.ascontiguousarray(splits[name], dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(test_groups).astype(str).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Selection:
    """Which of a source's images an audit uses, with their task labels and patient ids, chosen before any image
    is converted: the labels of an audit's test images can be re-read from its data file without the images."""

    development: np.ndarray  # indices into the source's development part (train + val) that the task keeps
    development_y: np.ndarray  # task labels of those images: (N,) 0/1, or (N, K) 0/1
    development_groups: np.ndarray  # (N,) patient id per image; the image's index among those kept where none
    test: np.ndarray  # indices into the source's test part: kept by the task, then `data.test_limit`'s subset
    test_y: np.ndarray
    test_groups: np.ndarray
    splits: dict[str, np.ndarray]  # split name -> indices into the kept development images
    test_selection: str  # how the test images were chosen, in words

    @property
    def split_ids_sha256(self) -> str:
        return split_ids_sha256(self.splits, self.test_groups)


def to_canonical(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 images (N, H, W) or (N, H, W, 3) -> float32 (N, C, size, size) in [-1, 1] (bilinear)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise AuditInputError(f"images have shape {images.shape}; expected (N, H, W) grey or (N, H, W, 3) colour")
    if images.dtype != np.uint8:
        raise AuditInputError(f"images have dtype {images.dtype}; expected 8-bit (uint8) images")
    if images.shape[1:3] != (size, size):
        mode = "L" if images.shape[-1] == 1 else "RGB"
        resized = [
            np.asarray(
                Image.fromarray(im.squeeze(-1) if mode == "L" else im, mode).resize((size, size), Image.BILINEAR)
            )
            for im in images
        ]
        images = np.stack(resized).reshape(len(images), size, size, -1)
    return pm1_from_grey(images.transpose(0, 3, 1, 2))


def binarise(
    labels: np.ndarray, section: DataSection, where: str, n_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Integer source labels -> (targets, keep mask) for the scenario's task; `n_classes` from the card if known."""
    labels = np.asarray(labels)
    if labels.size and labels.min() < 0:
        raise AuditInputError(f"{where}: label {int(labels.min())} is negative; labels are class numbers 0, 1, ...")
    if section.task == "multilabel":
        if labels.ndim != 2:
            raise AuditInputError(f"{where}: task multilabel needs one 0/1 label column per class")
        if labels.size and labels.max() > 1:
            raise AuditInputError(f"{where}: multilabel labels take values 0 and 1; found {int(labels.max())}")
        if n_classes is not None and labels.shape[1] != n_classes:
            raise AuditInputError(
                f"{where}: {labels.shape[1]} label columns but the card declares {n_classes} "
                "classes; give one 0/1 column per class"
            )
        return labels.astype(np.int64), np.ones(len(labels), bool)
    flat = labels.reshape(len(labels), -1)[:, 0].astype(np.int64)
    if section.task == "multiclass":
        if n_classes is not None and flat.size and flat.max() >= n_classes:
            raise AuditInputError(
                f"{where}: label {int(flat.max())} is outside the {n_classes} classes the card "
                f"declares (0..{n_classes - 1}); fix the labels or card `class_names`"
            )
        return flat, np.ones(len(flat), bool)
    if section.positive_labels is None:
        values = set(np.unique(flat).tolist())
        if not values <= {0, 1}:
            raise AuditInputError(
                f"{where}: labels take values {sorted(values)}; a binary task needs "
                "`data.positive_labels` (e.g. [2, 3, 4]) in the scenario"
            )
        return flat, np.ones(len(flat), bool)
    pos = np.isin(flat, section.positive_labels)
    keep = (
        pos | np.isin(flat, section.negative_labels)
        if section.negative_labels is not None
        else np.ones(len(flat), bool)
    )
    return pos.astype(np.int64), keep


def task_labels(
    part: SourcePart, section: DataSection, where: str, name: str, n_classes: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One part of a source (development or test) under the task's labels: (indices kept, their labels, their
    patient ids, or their index among those kept where the source has none)."""
    y, keep = binarise(part.labels, section, where, n_classes)
    if not keep.any():
        raise AuditInputError(
            f"{where}: no {name} images left after keeping labels "
            f"{list(section.positive_labels or ())} (positive) and "
            f"{list(section.negative_labels or ())} (negative); check `data.positive_labels` and "
            "`data.negative_labels`"
        )
    ids = part.patient_ids
    groups = ids[keep] if ids is not None else np.arange(int(keep.sum())).astype(str)
    return np.flatnonzero(keep), y[keep], groups


def select(
    loaded: SourceFiles, section: DataSection, *, seed: int, where: str, class_names: tuple[str, ...] = ()
) -> Selection:
    """The images an audit of `loaded` uses: the task's labels, the test subset and the d1/d2/... splits."""
    n_classes = len(class_names) if class_names and section.task != "binary" else None
    dev_index, dev_y, dev_groups = task_labels(
        loaded.development, section, where, "development (train + val)", n_classes
    )
    test_index, test_y, test_groups = task_labels(loaded.test, section, where, "test", n_classes)
    if len(np.unique(dev_groups)) < 2:
        raise AuditInputError(
            f"{where}: the development set (train + val) has {len(dev_index)} image(s) from one "
            "patient; the d1/d2 splits need at least two"
        )
    if test_y.ndim == 1 and section.task == "binary" and len(np.unique(test_y)) < 2:
        raise AuditInputError(
            f"{where}: the test split has one class only; AUC is undefined; check "
            "`data.positive_labels` or use a test set with both classes"
        )
    selection = "all"
    if section.test_limit is not None and section.test_limit < len(test_index):
        keep = stratified_subset(test_y, section.test_limit, seed)
        test_index, test_y, test_groups = test_index[keep], test_y[keep], test_groups[keep]
        selection = f"stratified seeded subset of {len(keep)} (seed {seed})"
    return Selection(
        development=dev_index,
        development_y=dev_y,
        development_groups=dev_groups,
        test=test_index,
        test_y=test_y,
        test_groups=test_groups,
        splits=make_splits(dev_groups, seed),
        test_selection=selection,
    )


# ---------------------------------------------------------------- MedMNIST-style .npz
def make_splits(groups: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Development indices per split, drawn over groups (patients): same seed, same ids."""
    unique = np.unique(groups)
    order = unique[np.random.default_rng(seed).permutation(len(unique))]
    half = len(order) // 2
    chosen = {"d1": order[:half], "d2": order[half:]}
    chosen["d1/10"] = chosen["d1"][: max(1, len(chosen["d1"]) // 10)]
    chosen["d2/2"] = chosen["d2"][: max(1, len(chosen["d2"]) // 2)]
    chosen["full"] = order
    return {name: np.flatnonzero(np.isin(groups, ids)) for name, ids in chosen.items()}


def stratified_subset(y: np.ndarray, limit: int, seed: int, nested: bool = False) -> np.ndarray:
    """Seeded subset of `limit` indices keeping class proportions (binary/multiclass labels). `nested`: each class
    is permuted once and cut at its share, so with one seed a smaller `limit`'s subset lies inside a larger one's
    (attacks on subsets of different sizes then share images); otherwise each class's share is drawn on its own."""
    if limit >= len(y):
        return np.arange(len(y))
    key = y if y.ndim == 1 else y.argmax(axis=1)
    rng = np.random.default_rng(seed)
    picked = []
    for value in np.unique(key):
        idx = np.flatnonzero(key == value)
        take = min(max(1, round(limit * len(idx) / len(y))), len(idx))
        # a full permutation draws the same order whatever the limit; a choice of `take` does not
        picked.append(rng.permutation(idx)[:take] if nested else rng.choice(idx, size=take, replace=False))
    return np.sort(np.concatenate(picked))


def load_data(
    source: str | Path,
    section: DataSection,
    *,
    image_size: int,
    channels: int,
    seed: int,
    class_names: tuple[str, ...] = (),
) -> AuditData:
    """Load, convert to canonical space, check and split a data source; raise AuditInputError on any defect."""
    if str(source).startswith("medmnist:"):
        from medaudit.data.medmnist import fetch_medmnist

        path = fetch_medmnist(str(source).split(":", 1)[1])
    else:
        path = Path(source)
    if not path.is_file():
        raise AuditInputError(f"{path}: data file not found; give a MedMNIST .npz, a CSV of images, or medmnist:NAME")
    if path.stat().st_size == 0:
        raise AuditInputError(f"{path}: the data file is empty (0 bytes)")
    suffix = path.suffix.lower()
    if suffix not in SOURCE_FORMATS:
        raise AuditInputError(
            f"{path}: unknown data format {suffix!r}; give one of {', '.join(SOURCE_FORMATS)} (or medmnist:NAME)"
        )
    loaded = SOURCE_FORMATS[suffix](path, section, image_size, seed)
    h, w = loaded.test.images.shape[1:3]
    if loaded.resampled_on_reading:
        resampling = f"each image file → {image_size}×{image_size} px, bilinear"
    else:
        resampling = (
            "none" if (h, w) == (image_size, image_size) else f"{h}×{w} → {image_size}×{image_size} px, bilinear"
        )
    chosen = select(loaded, section, seed=seed, where=str(path), class_names=class_names)
    dev = Images(
        to_canonical(loaded.development.images[chosen.development], image_size),
        chosen.development_y,
        chosen.development_groups,
    )
    test = Images(to_canonical(loaded.test.images[chosen.test], image_size), chosen.test_y, chosen.test_groups)
    if dev.x.shape[1] == 3 and channels == 1:
        raise AuditInputError(f"{path}: colour images, but the target takes 1 channel; convert the data to grey")
    notes = list(loaded.notes)
    if loaded.split_rule != SOURCE_SPLIT_RULE:
        notes.append(loaded.split_rule)
    patient_level = loaded.development.patient_ids is not None
    if not patient_level:
        notes.append("no patient ids: splits are image-level, so one patient may sit in several splits")
    if section.task == "binary":
        class_names = class_names or ("negative", "positive")
    return AuditData(
        development=dev,
        test=test,
        splits=chosen.splits,
        patient_level=patient_level,
        source=str(source),
        source_sha256=loaded.sha256,
        task=section.task,
        class_names=tuple(class_names),
        test_selection=chosen.test_selection,
        resolved_path=str(path),
        resampling=resampling,
        bit_depth=loaded.bit_depth,
        split_rule=f"{loaded.split_rule}; development split into disjoint halves d1/d2 (d1/10 a tenth of "
        f"d1, d2/2 half of d2) at {'patient' if patient_level else 'image'} level, "
        f"seed {seed}",
        notes=tuple(notes),
    )
