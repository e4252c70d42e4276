"""Reading a data source's files into 8-bit images with integer labels and patient ids, per part.

Sources: a MedMNIST-style `.npz` (`{train,val,test}_images` and `_labels`, optionally `_patient_ids`
and `_filenames`), or a CSV listing image files (8-bit PNG/JPEG, or DICOM) with label column(s), an
optional patient column and an optional `split` column; without one, `make_test_split` holds out a
seeded, stratified share of the patients as test. Every defect of the files is refused with one
AuditInputError naming the file and the defect; `medaudit.data` turns the parts into audit data.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from medaudit.errors import AuditInputError
from medaudit.files import sha256_file
from medaudit.scenario import DataSection

NPZ_SPLITS = ("train", "val", "test")  # the splits a MedMNIST-style .npz may hold; train and test are required
NPZ_FIELDS = ("images", "labels", "patient_ids", "filenames")  # arrays per split; the last two are optional
CSV_SPLITS = ("train", "val", "test")  # values a CSV `split` column may take
SOURCE_SPLIT_RULE = "the source's own split: train + val = development, test = test"
MADE_TEST_FRACTION = 0.2  # CSV without `split`: share of each label's patients held out as test (70/10/20 style)
DICOM_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "RGB")  # photometric interpretations medaudit reads
DICOM_BITS_ALLOCATED = (8, 16, 32)  # DICOM BitsAllocated values medaudit reads
PIL_MODES = {
    "L": "L",
    "1": "L",
    "LA": "L",
    "P": "RGB",
    "RGB": "RGB",
    "RGBA": "RGB",
    "CMYK": "RGB",
}  # 8-bit modes -> target
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
    notes: tuple[str, ...] = ()  # facts about the source the report states


def _detail(exc: BaseException) -> str:
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
        raise AuditInputError(f"{path}: not a readable .npz archive ({_detail(exc)})") from None
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
                raise AuditInputError(f"{path}: array {key!r} is corrupt ({_detail(exc)})") from None
            except Exception as exc:  # zipfile/zlib/OSError for damaged members
                raise AuditInputError(f"{path}: array {key!r} is corrupt ({_detail(exc)})") from None
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
    """A MedMNIST-style .npz: train (+ val) = development, test = test; `{split}_patient_ids` when present."""
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
    return SourceFiles(dev, test, sha256_file(path), SOURCE_SPLIT_RULE, tuple(notes))


# ---------------------------------------------------------------- image files (PNG/JPEG, DICOM)
def _read_dicom(path: Path) -> np.ndarray:
    import pydicom

    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises InvalidDicomError, EOFError, struct/Value errors for damaged files
        raise AuditInputError(f"{path}: not a readable DICOM file ({_detail(exc)})") from None
    if "PixelData" not in ds:
        raise AuditInputError(f"{path}: DICOM file has no pixel data")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in DICOM_PHOTOMETRIC:
        raise AuditInputError(
            f"{path}: DICOM photometric interpretation {photometric!r}; medaudit reads "
            f"{', '.join(DICOM_PHOTOMETRIC)}: convert the image"
        )
    allocated, stored = ds.get("BitsAllocated"), ds.get("BitsStored")
    if allocated not in DICOM_BITS_ALLOCATED or not isinstance(stored, int) or not 1 <= stored <= allocated:
        raise AuditInputError(
            f"{path}: DICOM bit depth BitsAllocated {allocated}, BitsStored {stored}; medaudit "
            "reads 8, 16 or 32 bits allocated with 1 <= BitsStored <= BitsAllocated"
        )
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise AuditInputError(
            f"{path}: multi-frame DICOM ({ds.NumberOfFrames} frames); medaudit reads one 2-D image per file"
        )
    try:
        arr = np.asarray(ds.pixel_array, dtype=np.float64)
    except Exception as exc:  # truncated or undecodable pixel data: pydicom raises ValueError/RuntimeError/...
        raise AuditInputError(
            f"{path}: DICOM pixel data cannot be decoded ({_detail(exc)}); the file may be "
            "truncated or compressed in a way pydicom cannot read"
        ) from None
    want_ndim = 3 if photometric == "RGB" else 2
    if arr.ndim != want_ndim or (arr.ndim == 3 and arr.shape[-1] != 3) or 0 in arr.shape:
        raise AuditInputError(
            f"{path}: DICOM pixel array has shape {arr.shape}; {photometric} needs "
            f"{'(rows, columns, 3)' if want_ndim == 3 else '(rows, columns)'}"
        )
    if not np.all(np.isfinite(arr)):
        raise AuditInputError(f"{path}: DICOM pixel data holds NaN or infinite values")
    if photometric == "MONOCHROME1":
        arr = arr.max() - arr
    lo, hi = float(arr.min()), float(arr.max())
    return np.round((arr - lo) / (hi - lo or 1.0) * 255).astype(np.uint8)  # window: full range


def _read_picture(path: Path) -> np.ndarray:
    # Pillow pads a truncated image silently when the process-wide ImageFile.LOAD_TRUNCATED_IMAGES is on, and
    # importing weasyprint (the report) turns it on: decode with it off, so a cut-short file is always refused.
    truncated_ok = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in PIL_MODES:
                raise AuditInputError(
                    f"{path}: image mode {mode!r} (not 8 bits per channel); medaudit reads 8-bit "
                    "grey or colour PNG/JPEG: convert it, or give 16-bit images as DICOM"
                )
            im.load()
            return np.asarray(im.convert(PIL_MODES[mode]))
    except AuditInputError:
        raise
    except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError... for damaged files
        raise AuditInputError(
            f"{path}: not a readable PNG/JPEG image ({_detail(exc)}); the file may be truncated or damaged"
        ) from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated_ok


def _read_image_file(path: Path) -> np.ndarray:
    """One image file as uint8 (H, W) grey or (H, W, 3) colour; refuse an empty or damaged file."""
    if path.stat().st_size == 0:
        raise AuditInputError(f"{path}: image file is empty (0 bytes)")
    return _read_dicom(path) if path.suffix.lower() == ".dcm" else _read_picture(path)


# ---------------------------------------------------------------- CSV of image files
def _read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of a UTF-8 CSV, refusing undecodable text and ragged rows."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AuditInputError(
            f"{path}: the CSV is not UTF-8 text (byte {exc.start} is "
            f"{exc.object[exc.start : exc.start + 1]!r}); save it as UTF-8"
        ) from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = list(reader.fieldnames or [])
        rows = []
        for row in reader:
            if None in row or any(v is None for v in row.values()):
                raise AuditInputError(
                    f"{path}: line {reader.line_num} has a different number of fields than the "
                    f"header ({len(header)}: {', '.join(header)})"
                )
            rows.append(row)
    except csv.Error as exc:
        raise AuditInputError(f"{path}: not a readable CSV ({exc})") from None
    return header, rows


def _csv_label(value: str, path: Path, line: int, column: str) -> int:
    try:
        number = float(value)
    except ValueError:
        raise AuditInputError(
            f"{path}: line {line} column `{column}` is {value!r}; labels are integer class numbers 0, 1, ..."
        ) from None
    if not np.isfinite(number) or number != round(number):
        raise AuditInputError(
            f"{path}: line {line} column `{column}` is {value!r}; labels are integer class numbers 0, 1, ..."
        )
    return int(number)


def make_test_split(
    groups: np.ndarray, strata: np.ndarray, seed: int, fraction: float = MADE_TEST_FRACTION
) -> np.ndarray:
    """Boolean test mask over images: in each stratum, a seeded `fraction` of its patients (rounded; at least one
    and never all when it has two or more) is held out. A patient's stratum is its most frequent label."""
    patients, patient_of = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    values, value_of = np.unique(np.asarray(strata).astype(str), return_inverse=True)
    counts = np.zeros((len(patients), len(values)), np.int64)
    np.add.at(counts, (patient_of, value_of), 1)
    stratum = counts.argmax(axis=1)  # ties: the smallest label
    rng = np.random.default_rng(seed)
    held = np.zeros(len(patients), bool)
    for s in range(len(values)):
        members = np.flatnonzero(stratum == s)
        take = int(round(len(members) * fraction))
        if len(members) >= 2:
            take = min(max(take, 1), len(members) - 1)
        held[rng.permutation(members)[:take]] = True
    return held[patient_of]


def read_csv(path: Path, section: DataSection, size: int, seed: int) -> SourceFiles:
    """A CSV of image files, each resized to `size` px: the `split` column's split, or one made by `make_test_split`."""
    header, rows = _read_csv_rows(path)
    if not rows:
        raise AuditInputError(f"{path}: the CSV has no rows")
    if "path" not in header:
        raise AuditInputError(
            f"{path}: CSV needs a `path` column (image file, relative to the CSV); found {', '.join(header)}"
        )
    label_cols = [c for c in header if c == "label" or c.startswith("label_")]
    if not label_cols:
        raise AuditInputError(f"{path}: CSV needs a `label` column (or `label_<class>` columns for multilabel)")
    if section.task != "multilabel":
        label_cols = label_cols[:1]
    patient_col = section.patient_column
    if patient_col and patient_col not in header:
        raise AuditInputError(f"{path}: scenario data.patient_column {patient_col!r} is not a CSV column")
    lines = range(2, len(rows) + 2)  # line numbers as an editor shows them (line 1 is the header)
    labels = np.array([[_csv_label(r[c], path, n, c) for c in label_cols] for n, r in zip(lines, rows)], np.int64)
    if patient_col:
        for n, r in zip(lines, rows):
            if not r[patient_col].strip():
                raise AuditInputError(f"{path}: line {n} has an empty patient id in column `{patient_col}`")
        groups = np.array([r[patient_col].strip() for r in rows])
    else:
        groups = np.arange(len(rows)).astype(str)
    if "split" in header:
        for n, r in zip(lines, rows):
            if r["split"] not in CSV_SPLITS:
                raise AuditInputError(
                    f"{path}: line {n} has split {r['split']!r}; use train, val or test (or drop "
                    "the `split` column and medaudit splits by patient)"
                )
        is_test = np.array([r["split"] == "test" for r in rows])
        split_rule = SOURCE_SPLIT_RULE
    else:
        strata = np.array(["|".join(map(str, row)) for row in labels])
        is_test = make_test_split(groups, strata, seed)
        split_rule = (
            f"no `split` column in {path.name}: medaudit held out {MADE_TEST_FRACTION:.0%} of each label's "
            f"patients as test (seed {seed}, stratified by label, "
            f"{f'by patient column `{patient_col}`' if patient_col else 'image-level: no patient column'})"
        )
    for part, chosen in (("train/val", ~is_test), ("test", is_test)):
        if not chosen.any():
            raise AuditInputError(f"{path}: no rows with split {part}")
    digest = hashlib.sha256(path.read_bytes())
    images = []
    for n, r in zip(lines, rows):
        file = (path.parent / r["path"]).resolve()
        if not r["path"].strip() or not file.is_file():
            raise AuditInputError(
                f"{path}: line {n}: image file {r['path']!r} not found (paths are relative to the CSV)"
            )
        digest.update(file.read_bytes())  # the data hash covers every image file, not only the CSV
        images.append(_read_image_file(file))
    kinds: dict[int, int] = {}  # ndim (2 grey, 3 colour) -> first line with it
    for n, im in zip(lines, images):
        kinds.setdefault(im.ndim, n)
    if len(kinds) > 1:
        raise AuditInputError(
            f"{path}: images mix grey (e.g. line {kinds[2]}) and colour (e.g. line {kinds[3]}); "
            "convert them to one kind"
        )
    stacked = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])
    source_labels = labels if section.task == "multilabel" else labels[:, 0]
    ids = groups if patient_col else None
    parts = [
        SourcePart(stacked[chosen], source_labels[chosen], ids[chosen] if ids is not None else None)
        for chosen in (~is_test, is_test)
    ]
    return SourceFiles(parts[0], parts[1], digest.hexdigest(), split_rule)
