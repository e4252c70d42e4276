"""Sources of image files: a CSV listing 8-bit PNG/JPEG or DICOM files, with labels, patients and splits.

Columns: `path` (relative to the CSV), `label` (or `label_<class>` columns for multilabel), optionally `split`
(`train`, `val`, `test`) and a patient column named by `data.patient_column`. Without `split`, `make_test_split`
holds out a seeded, stratified share of the patients as test. Every defect is refused with one AuditInputError
naming the file, the line and the fix.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from medaudit.core import AuditInputError
from medaudit.data.sources import SOURCE_SPLIT_RULE, SourceFiles, SourcePart, detail
from medaudit.scenario import DataSection

CSV_SPLITS = ("train", "val", "test")  # values a CSV `split` column may take
MADE_TEST_FRACTION = 0.2  # CSV without `split`: share of each label's patients held out as test (70/10/20 style)
DICOM_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "RGB")  # photometric interpretations medaudit reads
PICTURE_BIT_DEPTH = 8  # PNG/JPEG files medaudit reads hold 8 bits per channel (others are refused)
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


# ---------------------------------------------------------------- image files (PNG/JPEG, DICOM)
def _read_dicom(path: Path) -> tuple[np.ndarray, int]:
    import pydicom

    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises InvalidDicomError, EOFError, struct/Value errors for damaged files
        raise AuditInputError(f"{path}: not a readable DICOM file ({detail(exc)})") from None
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
            f"{path}: DICOM pixel data cannot be decoded ({detail(exc)}); the file may be "
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
    return np.round((arr - lo) / (hi - lo or 1.0) * 255).astype(np.uint8), stored  # window: full range


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
            f"{path}: not a readable PNG/JPEG image ({detail(exc)}); the file may be truncated or damaged"
        ) from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated_ok


def _read_image_file(path: Path) -> tuple[np.ndarray, int]:
    """One image file as uint8 (H, W) grey or (H, W, 3) colour, and the bits per channel its file holds; refuse an
    empty or damaged file."""
    if path.stat().st_size == 0:
        raise AuditInputError(f"{path}: image file is empty (0 bytes)")
    return _read_dicom(path) if path.suffix.lower() == ".dcm" else (_read_picture(path), PICTURE_BIT_DEPTH)


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
    images, depths = [], []
    for n, r in zip(lines, rows):
        file = (path.parent / r["path"]).resolve()
        if not r["path"].strip() or not file.is_file():
            raise AuditInputError(
                f"{path}: line {n}: image file {r['path']!r} not found (paths are relative to the CSV)"
            )
        digest.update(file.read_bytes())  # the data hash covers every image file, not only the CSV
        image, depth = _read_image_file(file)
        images.append(image)
        depths.append(depth)
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
    return SourceFiles(parts[0], parts[1], digest.hexdigest(), split_rule, True, max(depths))
