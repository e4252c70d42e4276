"""Reading a data source's files into 8-bit images with integer labels and patient ids, per part.

Here: the records every source reader returns, and the MedMNIST-style `.npz` (`{train,val,test}_images` and
`_labels`, optionally `_patient_ids` and `_filenames`); `medaudit.data.csv_folder` reads a CSV of image files. Every
defect of the files is refused with one AuditInputError naming the file and the defect; `medaudit.data.audit_data` turns
the parts into audit data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medaudit.core import AuditInputError, sha256_file

NPZ_SPLITS = ("train", "val", "test")  # the splits a MedMNIST-style .npz may hold; train and test are required
NPZ_FIELDS = ("images", "labels", "patient_ids", "filenames")  # arrays per split; the last two are optional
SOURCE_SPLIT_RULE = "the source's own split: train + val = development, test = test"
NPZ_BIT_DEPTH = 8  # a MedMNIST-style .npz holds uint8 images only
ERROR_DETAIL_CHARS = 160  # how much of a third-party error message one line quotes


@dataclass(frozen=True)
class SourcePart:
    """One part of a source (development = train + val, or test) as read from its files."""

    images: np.ndarray  # (N, H, W) grey or (N, H, W, 3) colour, uint8
    labels: np.ndarray  # (N,) or (N, K) int64 source labels, before the scenario's task is applied
    patient_ids: np.ndarray | None  # (N,) str patient id per image; None when the source has none


@dataclass(frozen=True)
class SourceFiles:
    """A source read and checked: its two parts and how they were separated."""

    development: SourcePart
    test: SourcePart
    sha256: str  # content hash of the source (CSV sources: the CSV and every image file)
    split_rule: str  # how development and test were separated: SOURCE_SPLIT_RULE or the rule medaudit applied
    resampled_on_reading: bool  # True: image files of any size were resized to the audit's size as they were read
    bit_depth: int  # bits per channel of the files (8: PNG, JPEG, MedMNIST; a DICOM's BitsStored), the deepest one
    notes: tuple[str, ...] = ()  # facts about the source the report states


def detail(exc: BaseException) -> str:
    """The first line of a third-party error message, shortened, for a one-line AuditInputError."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text[:ERROR_DETAIL_CHARS]


def integer_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Class-number labels as int64; refuse non-finite, fractional or non-numeric ones."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "biu":
        return labels.astype(np.int64)
    if labels.dtype.kind != "f":
        raise AuditInputError(f"{where}: labels of type {labels.dtype}; labels are integer class numbers 0, 1, ...")
    if not np.all(np.isfinite(labels)):
        raise AuditInputError(f"{where}: NaN or infinite labels; labels are integer class numbers 0, 1, ...")
    fractional = labels[labels != np.round(labels)]
    if fractional.size:
        raise AuditInputError(
            f"{where}: non-integer label {fractional[0]:g}; labels are integer class numbers 0, 1, ..."
        )
    return labels.astype(np.int64)


# ---------------------------------------------------------------- MedMNIST-style .npz
def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for corrupt archives
        raise AuditInputError(f"{path}: not a readable .npz archive ({detail(exc)})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise AuditInputError(f"{path}: a single .npy array, not an .npz archive of train/val/test arrays")
    arrays = {}
    with loaded:
        for key in loaded.files:
            try:
                arrays[key] = loaded[key]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise AuditInputError(
                        f"{path}: array {key!r} holds Python objects, which need pickle; medaudit "
                        "never unpickles: save it as a numeric or unicode string array"
                    ) from None
                raise AuditInputError(f"{path}: array {key!r} is corrupt ({detail(exc)})") from None
            except Exception as exc:  # zipfile/zlib/OSError for damaged members
                raise AuditInputError(f"{path}: array {key!r} is corrupt ({detail(exc)})") from None
    return arrays


def _npz_split(
    path: Path, split: str, arrays: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(images uint8, integer labels, patient ids or None) of one .npz split, each checked."""
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if images.dtype.kind == "f" and not np.all(np.isfinite(images)):
        raise AuditInputError(f"{path}: {split}_images hold NaN or infinite values; images must be uint8 (0-255)")
    if images.dtype != np.uint8:
        raise AuditInputError(
            f"{path}: {split}_images are {images.dtype}; medaudit reads 8-bit images (uint8, "
            "0-255): rescale them to uint8"
        )
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (1, 3))):
        raise AuditInputError(
            f"{path}: {split}_images have shape {images.shape}; expected (N, H, W) grey or (N, H, W, 3) colour"
        )
    if len(images) == 0:
        raise AuditInputError(f"{path}: the {split} split is empty (0 images)")
    if labels.ndim not in (1, 2):
        raise AuditInputError(f"{path}: {split}_labels have shape {labels.shape}; expected (N,) or (N, K)")
    if len(labels) != len(images):
        raise AuditInputError(
            f"{path}: {split}_images holds {len(images)} images but {split}_labels holds "
            f"{len(labels)} labels; the arrays must be the same length"
        )
    labels = integer_labels(labels, f"{path}: {split}_labels")
    ids = arrays.get(f"{split}_patient_ids")
    if ids is not None:
        if ids.dtype.kind not in "Uiu" or ids.ndim != 1:
            raise AuditInputError(
                f"{path}: {split}_patient_ids is {ids.dtype} {ids.shape}; expected one unicode "
                "string (or integer) id per image"
            )
        if len(ids) != len(images):
            raise AuditInputError(
                f"{path}: {split}_images holds {len(images)} images but {split}_patient_ids holds "
                f"{len(ids)} ids; the arrays must be the same length"
            )
        ids = ids.astype(str)
        if np.any(ids == ""):
            raise AuditInputError(f"{path}: {split}_patient_ids has an empty id at index {int(np.argmax(ids == ''))}")
    return images, labels, ids


def read_npz(path: Path) -> SourceFiles:
    """A MedMNIST-style .npz: train (+ val) = development, test = test; `{split}_patient_ids` when present.
    Images keep their stored size (`medaudit.data.audit_data` resamples them)."""
    arrays = _read_npz(path)
    unexpected = [k for k in arrays if k.partition("_")[0] not in NPZ_SPLITS or k.partition("_")[2] not in NPZ_FIELDS]
    if unexpected:
        raise AuditInputError(
            f"{path}: unexpected array(s) {', '.join(unexpected)}; a MedMNIST-style .npz holds "
            "{train,val,test}_images and _labels (optional: _patient_ids, _filenames)"
        )
    present = [s for s in NPZ_SPLITS if any(k.startswith(f"{s}_") for k in arrays)]
    needed = [f"{s}_{f}" for s in NPZ_SPLITS if s in present or s != "val" for f in ("images", "labels")]
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise AuditInputError(
            f"{path}: MedMNIST-style .npz needs arrays {', '.join(missing)}; found {', '.join(arrays) or 'none'}"
        )
    parts = {s: _npz_split(path, s, arrays) for s in present}
    shapes = {
        s: images.shape[1:3] + ((images.shape[3] if images.ndim == 4 else 1),) for s, (images, _, _) in parts.items()
    }
    if len(set(shapes.values())) > 1:
        said = ", ".join(f"{s} {h}x{w}x{c}" for s, (h, w, c) in shapes.items())
        raise AuditInputError(
            f"{path}: splits differ in image size or channels ({said}, as HxWxchannels); "
            "all splits must share one size and channel count"
        )
    columns = {s: labels.shape[1] if labels.ndim == 2 else 1 for s, (_, labels, _) in parts.items()}
    if len(set(columns.values())) > 1:
        raise AuditInputError(
            f"{path}: splits have different numbers of label columns "
            f"({', '.join(f'{s} {c}' for s, c in columns.items())})"
        )
    with_ids = [s for s in present if parts[s][2] is not None]
    if with_ids and len(with_ids) != len(present):
        lacking = [s for s in present if s not in with_ids]
        raise AuditInputError(
            f"{path}: {', '.join(with_ids)} carry patient ids but {', '.join(lacking)} do not; "
            f"add {', '.join(f'{s}_patient_ids' for s in lacking)} or drop them all"
        )
    dev_names = [s for s in ("train", "val") if s in present]
    dev_ids = np.concatenate([parts[s][2] for s in dev_names]) if with_ids else None
    dev = SourcePart(
        np.concatenate([parts[s][0] for s in dev_names]), np.concatenate([parts[s][1] for s in dev_names]), dev_ids
    )
    test = SourcePart(*parts["test"])
    notes = []
    if with_ids:
        shared = sorted(set(dev.patient_ids.tolist()) & set(test.patient_ids.tolist()))
        if shared:
            notes.append(
                f"{len(shared)} patient(s) appear in both development and test (e.g. {shared[0]}): "
                "the source's split is not patient-level"
            )
    return SourceFiles(dev, test, sha256_file(path), SOURCE_SPLIT_RULE, False, NPZ_BIT_DEPTH, tuple(notes))
