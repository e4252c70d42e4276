"""Audit data: images in the canonical space ([-1, 1] float32 NCHW) and patient-level splits.

Sources: MedMNIST `.npz` (train/val/test arrays), a CSV listing image files (PNG/JPEG) or DICOM
files with label column(s) and an optional patient column. Development = train + val of the source;
test = test. The development set is split as in Bortsova et al. (2021), Table 1: disjoint halves
d1 / d2, d1/10 (a tenth of d1) and d2/2 (half of d2) — by patient when patient ids exist.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from medaudit.errors import AuditInputError
from medaudit.scenario import DataSection
from medaudit.files import sha256_file

SPLIT_NAMES = ("d1", "d2", "d2/2", "d1/10", "full")


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
    split_rule: str  # how development/test and d1/d2/... were made, in words (stated in the report)
    resampling: str  # source image size -> canonical size, in words
    test_selection: str = "all"  # how the test images were chosen
    notes: tuple[str, ...] = field(default=())

    @property
    def split_ids_sha256(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.splits):
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.splits[name], dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(self.test.groups).astype(str).tobytes())
        return h.hexdigest()

    def split(self, name: str) -> Images:
        return self.development.subset(self.splits[name])


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
        resized = [np.asarray(Image.fromarray(im.squeeze(-1) if mode == "L" else im, mode).resize(
            (size, size), Image.BILINEAR)) for im in images]
        images = np.stack(resized).reshape(len(images), size, size, -1)
    return (images.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0).astype(np.float32)


def binarise(labels: np.ndarray, section: DataSection, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Source labels -> (targets, keep mask) for the scenario's task."""
    labels = np.asarray(labels)
    if section.task == "multilabel":
        if labels.ndim != 2:
            raise AuditInputError(f"{where}: task multilabel needs one 0/1 label column per class")
        return labels.astype(np.int64), np.ones(len(labels), bool)
    flat = labels.reshape(len(labels), -1)[:, 0].astype(np.int64)
    if section.task == "multiclass":
        return flat, np.ones(len(flat), bool)
    if section.positive_labels is None:
        values = set(np.unique(flat).tolist())
        if not values <= {0, 1}:
            raise AuditInputError(f"{where}: labels take values {sorted(values)}; a binary task needs "
                                  "`data.positive_labels` (e.g. [2, 3, 4]) in the scenario")
        return flat, np.ones(len(flat), bool)
    pos = np.isin(flat, section.positive_labels)
    keep = pos | np.isin(flat, section.negative_labels) if section.negative_labels is not None else np.ones(len(flat), bool)
    return pos.astype(np.int64), keep


def _load_npz(path: Path, section: DataSection, size: int) -> tuple[Images, Images, bool, str]:
    try:
        npz = np.load(path, allow_pickle=False)
        arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # numpy raises several types for corrupt archives
        raise AuditInputError(f"{path}: not a readable .npz archive ({exc})") from None
    missing = [k for k in ("train_images", "train_labels", "test_images", "test_labels") if k not in arrays]
    if missing:
        raise AuditInputError(f"{path}: MedMNIST-style .npz needs arrays {', '.join(missing)}; found {', '.join(arrays)}")
    parts = []
    for split in ("dev", "test"):
        names = ("train", "val") if split == "dev" else ("test",)
        xs = [arrays[f"{n}_images"] for n in names if f"{n}_images" in arrays]
        ys = [arrays[f"{n}_labels"] for n in names if f"{n}_labels" in arrays]
        y, keep = binarise(np.concatenate(ys), section, str(path))
        x = to_canonical(np.concatenate(xs)[keep], size)
        parts.append(Images(x, y[keep], np.arange(int(keep.sum())).astype(str)))
    return parts[0], parts[1], False, sha256_file(path)


def _read_image_file(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".dcm":
        import pydicom

        ds = pydicom.dcmread(path)
        arr = ds.pixel_array.astype(np.float64)
        if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
            arr = arr.max() - arr
        lo, hi = float(arr.min()), float(arr.max())
        return np.round((arr - lo) / (hi - lo or 1.0) * 255).astype(np.uint8)  # window: full range
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB" if im.mode in ("RGB", "RGBA", "P", "CMYK") else "L"))


def _load_csv(path: Path, section: DataSection, size: int) -> tuple[Images, Images, bool, str]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise AuditInputError(f"{path}: the CSV has no rows")
    columns = rows[0].keys()
    for col in ("path", "split"):
        if col not in columns:
            raise AuditInputError(f"{path}: CSV needs a `{col}` column (path: image file; split: train, val or test); "
                                  f"found {', '.join(columns)}")
    label_cols = [c for c in columns if c == "label" or c.startswith("label_")]
    if not label_cols:
        raise AuditInputError(f"{path}: CSV needs a `label` column (or `label_<class>` columns for multilabel)")
    patient_col = section.patient_column
    if patient_col and patient_col not in columns:
        raise AuditInputError(f"{path}: scenario data.patient_column {patient_col!r} is not a CSV column")
    parts, digest = [], hashlib.sha256(path.read_bytes())
    for split in ("dev", "test"):
        chosen = [r for r in rows if (r["split"] in ("train", "val")) == (split == "dev") and r["split"] in ("train", "val", "test")]
        if not chosen:
            raise AuditInputError(f"{path}: no rows with split {'train/val' if split == 'dev' else 'test'}")
        images = []
        for r in chosen:
            file = (path.parent / r["path"]).resolve()
            if not file.is_file():
                raise AuditInputError(f"{path}: image file {r['path']!r} not found (paths are relative to the CSV)")
            digest.update(file.read_bytes())  # the data hash covers every image file, not only the CSV
            images.append(_read_image_file(file))
        channels = {im.ndim for im in images}
        if len(channels) > 1:
            images = [np.stack([im] * 3, -1) if im.ndim == 2 else im for im in images]
        stacked = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])
        labels = np.array([[int(float(r[c])) for c in label_cols] for r in chosen])
        y, keep = binarise(labels if section.task == "multilabel" else labels[:, 0], section, str(path))
        groups = np.array([r[patient_col] for r in chosen]) if patient_col else np.arange(len(chosen)).astype(str)
        parts.append(Images(to_canonical(stacked[keep], size), y[keep], groups[keep]))
    return parts[0], parts[1], patient_col is not None, digest.hexdigest()


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


def stratified_subset(y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Seeded subset of `limit` indices keeping class proportions (binary/multiclass labels)."""
    if limit >= len(y):
        return np.arange(len(y))
    key = y if y.ndim == 1 else y.argmax(axis=1)
    rng = np.random.default_rng(seed)
    picked = []
    for value in np.unique(key):
        idx = np.flatnonzero(key == value)
        take = max(1, round(limit * len(idx) / len(y)))
        picked.append(rng.choice(idx, size=min(take, len(idx)), replace=False))
    return np.sort(np.concatenate(picked))


def load_data(source: str | Path, section: DataSection, *, image_size: int, channels: int, seed: int,
              class_names: tuple[str, ...] = ()) -> AuditData:
    """Load, convert to canonical space, check and split a data source."""
    if str(source).startswith("medmnist:"):
        from medaudit.medmnist import fetch_medmnist

        path = fetch_medmnist(str(source).split(":", 1)[1])
    else:
        path = Path(source)
    if not path.is_file():
        raise AuditInputError(f"{path}: data file not found; give a MedMNIST .npz, a CSV of images, or medmnist:NAME")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        dev, test, patient_level, digest = _load_npz(path, section, image_size)
        with np.load(path, allow_pickle=False) as npz:
            h, w = npz["test_images"].shape[1:3]
        resampling = "none" if (h, w) == (image_size, image_size) else f"{h}×{w} → {image_size}×{image_size} px, bilinear"
    elif suffix == ".csv":
        dev, test, patient_level, digest = _load_csv(path, section, image_size)
        resampling = f"each image file → {image_size}×{image_size} px, bilinear"
    else:
        raise AuditInputError(f"{path}: unknown data format {suffix!r}; give a .npz (MedMNIST layout) or a .csv")
    data_c = dev.x.shape[1]
    if data_c == 3 and channels == 1:
        raise AuditInputError(f"{path}: colour images, but the target takes 1 channel; convert the data to grey")
    notes = []
    if test.y.ndim == 1 and section.task == "binary" and len(np.unique(test.y)) < 2:
        raise AuditInputError(f"{path}: the test split has one class only; AUC is undefined; check "
                              "`data.positive_labels` or use a test set with both classes")
    selection = "all"
    if section.test_limit is not None and section.test_limit < len(test):
        keep = stratified_subset(test.y, section.test_limit, seed)
        test = test.subset(keep)
        selection = f"stratified seeded subset of {len(keep)} (seed {seed})"
    if not patient_level:
        notes.append("no patient ids: splits are image-level, so one patient may sit in several splits")
    if section.task == "binary":
        class_names = class_names or ("negative", "positive")
    unit = "patient" if patient_level else "image"
    split_rule = (f"development = the source's train + val, test = its test split; development split into disjoint "
                  f"halves d1/d2 (d1/10 a tenth of d1, d2/2 half of d2) at {unit} level, seed {seed}")
    return AuditData(development=dev, test=test, splits=make_splits(dev.groups, seed),
                     patient_level=patient_level, source=str(source), source_sha256=digest,
                     task=section.task, class_names=tuple(class_names), resolved_path=str(path),
                     split_rule=split_rule, resampling=resampling, test_selection=selection, notes=tuple(notes))

