"""A corpus of broken inputs for every data source (npz, CSV of PNG/JPEG, DICOM, `medmnist:`): each is refused with
one exact line naming the file and the defect, and through the CLI exits 2 having written nothing under --out.
A mutation test truncates and flips bytes in valid files: the CLI exits 0 or 2, never with a traceback.

All images are generated; no real data is needed."""

from __future__ import annotations

import csv
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medaudit.cli import app
from medaudit.core.errors import AuditInputError
from medaudit.data import medmnist
from medaudit.data.audit_data import load_data
from medaudit.scenario.threat_model import DataSection
from tests.conftest import TinyNet, export, synthetic_images, write_dicom, write_synthetic_npz

ANY = "…"  # in an expected message: third-party detail (numpy's, Pillow's, pydicom's words) of any length


@dataclass(frozen=True)
class Case:
    """One broken input: the data source, the scenario's data section, the exact expected message."""

    source: str  # path or medmnist:NAME
    message: str  # the whole expected message; ANY stands for third-party detail
    section: DataSection = DataSection()
    channels: int = 1  # channels of the target the CLI run uses


def _npz(tmp_path: Path, **changes) -> Path:
    """A valid generated .npz (train 48, val 16, test 32 images, 16 px grey), then `changes` applied:
    an array replaces or adds a key, None removes it."""
    path = write_synthetic_npz(tmp_path / "data.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(path, **arrays)
    return path


def _folder(
    tmp_path: Path, *, kind: str = "png", n: int = 12, rows: list[dict] | None = None, header: str | None = None
) -> Path:
    """A valid CSV of `n` generated images (png, jpg or dcm) with label, patient and split columns."""
    images, labels = synthetic_images(n, 16)
    written = []
    for i, (im, label) in enumerate(zip(images, labels)):
        name = f"img{i}.{kind}"
        if kind == "dcm":
            write_dicom(tmp_path / name, im)
        else:
            Image.fromarray(im).save(tmp_path / name)
        written.append(
            {
                "path": name,
                "label": str(int(label)),
                "patient": f"p{i // 2}",
                "split": "test" if i >= n * 2 // 3 else "train",
            }
        )
    path = tmp_path / "data.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(written[0]))
        writer.writeheader()
        writer.writerows(rows if rows is not None else written)
    if header is not None:
        path.write_text(header + path.read_text().split("\n", 1)[1])
    return path


def _rows(tmp_path: Path, kind: str = "png") -> list[dict]:
    path = _folder(tmp_path, kind=kind)
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_rows(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the corpus: name -> builder(tmp_path, monkeypatch)
def npz_lengths(tmp, mp):
    p = _npz(tmp, train_labels=np.zeros((40, 1), np.uint8))
    return Case(
        str(p),
        f"{p}: train_images holds 48 images but train_labels holds 40 labels; the arrays must be the same length",
    )


def npz_sizes(tmp, mp):
    p = _npz(tmp, test_images=synthetic_images(32, 20)[0])
    return Case(
        str(p),
        f"{p}: splits differ in image size or channels (train 16x16x1, val 16x16x1, test 20x20x1, "
        "as HxWxchannels); all splits must share one size and channel count",
    )


def npz_channels(tmp, mp):
    p = _npz(tmp, val_images=synthetic_images(16, 16, channels=3)[0])
    return Case(
        str(p),
        f"{p}: splits differ in image size or channels (train 16x16x1, val 16x16x3, test 16x16x1, "
        "as HxWxchannels); all splits must share one size and channel count",
    )


def npz_missing_split(tmp, mp):
    p = _npz(tmp, test_images=None, test_labels=None)
    return Case(
        str(p),
        f"{p}: MedMNIST-style .npz needs arrays test_images, test_labels; found train_images, "
        "train_labels, val_images, val_labels",
    )


def npz_half_split(tmp, mp):
    p = _npz(tmp, val_labels=None)
    return Case(
        str(p),
        f"{p}: MedMNIST-style .npz needs arrays val_labels; found train_images, train_labels, "
        "val_images, test_images, test_labels",
    )


def npz_extra_split(tmp, mp):
    p = _npz(tmp, extra_images=synthetic_images(4, 16)[0])
    return Case(
        str(p),
        f"{p}: unexpected array(s) extra_images; a MedMNIST-style .npz holds "
        "{train,val,test}_images and _labels (optional: _patient_ids, _filenames)",
    )


def npz_truncated(tmp, mp):
    p = _npz(tmp)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return Case(str(p), f"{p}: not a readable .npz archive ({ANY})")


def npz_corrupt_pixels(tmp, mp):
    p = _npz(tmp)
    raw = bytearray(p.read_bytes())
    for offset in range(400, 420):  # inside train_images' pixel bytes (the first member): its CRC no longer matches
        raw[offset] ^= 0xFF
    p.write_bytes(bytes(raw))
    return Case(str(p), f"{p}: array 'train_images' is corrupt ({ANY})")


def npz_zero_bytes(tmp, mp):
    p = tmp / "data.npz"
    p.write_bytes(b"")
    return Case(str(p), f"{p}: the data file is empty (0 bytes)")


def npz_single_array(tmp, mp):
    p = tmp / "data.npz"
    with open(p, "wb") as f:
        np.save(f, synthetic_images(4, 16)[0])
    return Case(str(p), f"{p}: a single .npy array, not an .npz archive of train/val/test arrays")


def npz_16_bit(tmp, mp):
    p = _npz(tmp, train_images=synthetic_images(48, 16)[0].astype(np.uint16) * 256)
    return Case(
        str(p), f"{p}: train_images are uint16; medaudit reads 8-bit images (uint8, 0-255): rescale them to uint8"
    )


def npz_nan_pixels(tmp, mp):
    images = synthetic_images(32, 16)[0].astype(np.float32)
    images[3, 4, 5] = np.nan
    p = _npz(tmp, test_images=images)
    return Case(str(p), f"{p}: test_images hold NaN or infinite values; images must be uint8 (0-255)")


def npz_nan_labels(tmp, mp):
    labels = np.zeros((16, 1), np.float32)
    labels[2] = np.inf
    p = _npz(tmp, val_labels=labels)
    return Case(str(p), f"{p}: val_labels: NaN or infinite labels; labels are integer class numbers 0, 1, ...")


def npz_fractional_labels(tmp, mp):
    p = _npz(tmp, train_labels=np.full((48, 1), 0.5, np.float32))
    return Case(str(p), f"{p}: train_labels: non-integer label 0.5; labels are integer class numbers 0, 1, ...")


def npz_label_outside_classes(tmp, mp):
    labels = synthetic_images(32, 16)[1][:, None].copy()
    labels[0] = 2
    p = _npz(tmp, test_labels=labels)
    return Case(
        str(p),
        f"{p}: labels take values [0, 1, 2]; a binary task needs `data.positive_labels` (e.g. "
        "[2, 3, 4]) in the scenario",
    )


def npz_negative_label(tmp, mp):
    p = _npz(tmp, train_labels=np.full((48, 1), -1, np.int8))
    return Case(str(p), f"{p}: label -1 is negative; labels are class numbers 0, 1, ...")


def npz_multiclass_beyond_card(tmp, mp):
    labels = synthetic_images(48, 16)[1][:, None].copy()
    labels[5] = 4
    p = _npz(tmp, train_labels=labels)
    return Case(
        str(p),
        f"{p}: label 4 is outside the 2 classes the card declares (0..1); fix the labels or card `class_names`",
        DataSection(task="multiclass"),
    )


def npz_empty_after_filter(tmp, mp):
    p = _npz(tmp)
    return Case(
        str(p),
        f"{p}: no development (train + val) images left after keeping labels [5] (positive) and "
        "[6] (negative); check `data.positive_labels` and `data.negative_labels`",
        DataSection(positive_labels=(5,), negative_labels=(6,)),
    )


def npz_empty_split(tmp, mp):
    p = _npz(tmp, test_images=np.zeros((0, 16, 16), np.uint8), test_labels=np.zeros((0, 1), np.uint8))
    return Case(str(p), f"{p}: the test split is empty (0 images)")


def npz_pickled_ids(tmp, mp):
    p = _npz(tmp, train_patient_ids=np.array([object()] * 48, dtype=object))
    return Case(
        str(p),
        f"{p}: array 'train_patient_ids' holds Python objects, which need pickle; medaudit never "
        "unpickles: save it as a numeric or unicode string array",
    )


def npz_ids_in_one_split(tmp, mp):
    p = _npz(tmp, train_patient_ids=np.array([f"p{i}" for i in range(48)]))
    return Case(
        str(p),
        f"{p}: train carry patient ids but val, test do not; add val_patient_ids, test_patient_ids or drop them all",
    )


def npz_ids_length(tmp, mp):
    p = write_synthetic_npz(tmp / "data.npz", patient_ids=True)
    with np.load(p) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["val_patient_ids"] = arrays["val_patient_ids"][:10]
    np.savez(p, **arrays)
    return Case(
        str(p), f"{p}: val_images holds 16 images but val_patient_ids holds 10 ids; the arrays must be the same length"
    )


def npz_four_channels(tmp, mp):
    p = _npz(tmp, train_images=np.zeros((48, 16, 16, 4), np.uint8))
    return Case(str(p), f"{p}: train_images have shape (48, 16, 16, 4); expected (N, H, W) grey or (N, H, W, 3) colour")


def csv_not_utf8(tmp, mp):
    p = _folder(tmp)
    p.write_bytes(p.read_bytes().replace(b"img0.png", "imgé.png".encode("latin-1")))
    at = p.read_bytes().index(b"\xe9")
    return Case(str(p), f"{p}: the CSV is not UTF-8 text (byte {at} is b'\\xe9'); save it as UTF-8")


def csv_zero_byte_image(tmp, mp):
    p = _folder(tmp)
    (tmp / "img3.png").write_bytes(b"")
    return Case(str(p), f"{tmp / 'img3.png'}: image file is empty (0 bytes)")


def csv_truncated_png(tmp, mp):
    p = _folder(tmp)
    image = tmp / "img4.png"
    image.write_bytes(image.read_bytes()[:60])
    return Case(str(p), f"{image}: not a readable PNG/JPEG image ({ANY}); the file may be truncated or damaged")


def csv_truncated_png_after_weasyprint(tmp, mp):
    import weasyprint  # noqa: F401  (its import turns on Pillow's process-wide LOAD_TRUNCATED_IMAGES)

    return csv_truncated_png(tmp, mp)


def csv_corrupt_jpeg(tmp, mp):
    p = _folder(tmp, kind="jpg")
    image = tmp / "img2.jpg"
    image.write_bytes(b"\xff\xd8\xff" + b"\x00garbage" * 20)
    return Case(str(p), f"{image}: not a readable PNG/JPEG image ({ANY}); the file may be truncated or damaged")


def csv_16_bit_png(tmp, mp):
    p = _folder(tmp)
    image = tmp / "img1.png"
    Image.fromarray(np.full((16, 16), 40000, np.uint16)).save(image)
    return Case(
        str(p),
        f"{image}: image mode 'I;16' (not 8 bits per channel); medaudit reads 8-bit grey or colour "
        "PNG/JPEG: convert it, or give 16-bit images as DICOM",
    )


def csv_missing_image(tmp, mp):
    p = _folder(tmp)
    (tmp / "img5.png").unlink()
    return Case(str(p), f"{p}: line 7: image file 'img5.png' not found (paths are relative to the CSV)")


def csv_label_outside_classes(tmp, mp):
    rows = _rows(tmp)
    rows[0]["label"] = "3"
    p = _write_rows(tmp / "data.csv", rows)
    return Case(
        str(p),
        f"{p}: labels take values [0, 1, 3]; a binary task needs `data.positive_labels` (e.g. "
        "[2, 3, 4]) in the scenario",
    )


def csv_label_nan(tmp, mp):
    rows = _rows(tmp)
    rows[2]["label"] = "nan"
    p = _write_rows(tmp / "data.csv", rows)
    return Case(str(p), f"{p}: line 4 column `label` is 'nan'; labels are integer class numbers 0, 1, ...")


def csv_label_word(tmp, mp):
    rows = _rows(tmp)
    rows[1]["label"] = "pneumonia"
    p = _write_rows(tmp / "data.csv", rows)
    return Case(str(p), f"{p}: line 3 column `label` is 'pneumonia'; labels are integer class numbers 0, 1, ...")


def csv_unknown_split(tmp, mp):
    rows = _rows(tmp)
    rows[0]["split"] = "tset"
    p = _write_rows(tmp / "data.csv", rows)
    return Case(
        str(p),
        f"{p}: line 2 has split 'tset'; use train, val or test (or drop the `split` column and "
        "medaudit splits by patient)",
    )


def csv_missing_split(tmp, mp):
    rows = [dict(r, split="train") for r in _rows(tmp)]
    p = _write_rows(tmp / "data.csv", rows)
    return Case(str(p), f"{p}: no rows with split test")


def csv_ragged_row(tmp, mp):
    p = _folder(tmp)
    lines = p.read_text().splitlines()
    lines[2] += ",extra"
    p.write_text("\n".join(lines) + "\n")
    return Case(
        str(p), f"{p}: line 3 has a different number of fields than the header (4: path, label, patient, split)"
    )


def csv_mixed_channels(tmp, mp):
    p = _folder(tmp)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp / "img1.png")
    return Case(str(p), f"{p}: images mix grey (e.g. line 2) and colour (e.g. line 3); convert them to one kind")


def csv_empty_after_filter(tmp, mp):
    p = _folder(tmp)
    return Case(
        str(p),
        f"{p}: no development (train + val) images left after keeping labels [7] (positive) and "
        "[8] (negative); check `data.positive_labels` and `data.negative_labels`",
        DataSection(positive_labels=(7,), negative_labels=(8,)),
    )


def csv_header_only(tmp, mp):
    p = tmp / "data.csv"
    p.write_text("path,label,split\n")
    return Case(str(p), f"{p}: the CSV has no rows")


def csv_empty_patient(tmp, mp):
    rows = _rows(tmp)
    rows[4]["patient"] = " "
    p = _write_rows(tmp / "data.csv", rows)
    return Case(
        str(p), f"{p}: line 6 has an empty patient id in column `patient`", DataSection(patient_column="patient")
    )


def dicom_truncated_pixels(tmp, mp):
    p = _folder(tmp, kind="dcm")
    image = tmp / "img2.dcm"
    image.write_bytes(image.read_bytes()[:-100])
    return Case(
        str(p),
        f"{image}: DICOM pixel data cannot be decoded ({ANY}); the file may be truncated or "
        "compressed in a way pydicom cannot read",
    )


def dicom_not_dicom(tmp, mp):
    p = _folder(tmp, kind="dcm")
    image = tmp / "img3.dcm"
    image.write_bytes(b"this is not DICOM at all" * 10)
    return Case(str(p), f"{image}: not a readable DICOM file ({ANY})")


def dicom_zero_bytes(tmp, mp):
    p = _folder(tmp, kind="dcm")
    (tmp / "img0.dcm").write_bytes(b"")
    return Case(str(p), f"{tmp / 'img0.dcm'}: image file is empty (0 bytes)")


def dicom_bit_depth(tmp, mp):
    p = _folder(tmp, kind="dcm")
    image = write_dicom(tmp / "img1.dcm", synthetic_images(1, 16)[0][0], BitsStored=20, HighBit=19)
    return Case(
        str(p),
        f"{image}: DICOM bit depth BitsAllocated 16, BitsStored 20; medaudit reads 8, 16 or 32 bits "
        "allocated with 1 <= BitsStored <= BitsAllocated",
    )


def dicom_photometric(tmp, mp):
    p = _folder(tmp, kind="dcm")
    image = write_dicom(tmp / "img1.dcm", synthetic_images(1, 16)[0][0], PhotometricInterpretation="PALETTE COLOR")
    return Case(
        str(p),
        f"{image}: DICOM photometric interpretation 'PALETTE COLOR'; medaudit reads MONOCHROME1, "
        "MONOCHROME2, RGB: convert the image",
    )


def dicom_no_pixels(tmp, mp):
    import pydicom

    p = _folder(tmp, kind="dcm")
    image = tmp / "img5.dcm"
    ds = pydicom.dcmread(image)
    del ds.PixelData
    ds.save_as(image)
    return Case(str(p), f"{image}: DICOM file has no pixel data")


def medmnist_unknown(tmp, mp):
    return Case(
        "medmnist:pneumonimnist",
        "medmnist:pneumonimnist: unknown MedMNIST set 'pneumonimnist'; valid: "
        f"{', '.join(medmnist.MEDMNIST_MD5)}; did you mean 'pneumoniamnist'?",
    )


def medmnist_unreachable(tmp, mp):
    url = f"http://127.0.0.1:{_closed_port()}"
    mp.setenv("MEDAUDIT_MEDMNIST_URL", url)
    return Case(
        "medmnist:breastmnist",
        f"{url}/breastmnist.npz?download=1: cannot connect ({ANY}); download "
        f"{url}/breastmnist.npz?download=1 by hand, then give `medaudit demo --data` the folder holding it (`medaudit run --data` the file)",
    )


def medmnist_broken_official(tmp, mp):
    # a cached file whose MD5 is (patched to be) official but whose arrays are broken: the npz checks still apply
    cache = tmp / "cache"
    (cache / "medmnist").mkdir(parents=True)
    p = _npz(tmp, test_labels=np.zeros((30, 1), np.uint8))
    cached = cache / "medmnist" / "breastmnist.npz"
    cached.write_bytes(p.read_bytes())
    mp.setenv("MEDAUDIT_CACHE", str(cache))
    mp.setitem(medmnist.MEDMNIST_MD5["breastmnist"], 28, medmnist.md5_file(cached))
    return Case(
        "medmnist:breastmnist",
        f"{cached}: test_images holds 32 images but test_labels holds 30 labels; the arrays must be the same length",
    )


CORPUS: dict[str, Callable] = {
    f.__name__: f
    for f in (
        npz_lengths,
        npz_sizes,
        npz_channels,
        npz_missing_split,
        npz_half_split,
        npz_extra_split,
        npz_truncated,
        npz_corrupt_pixels,
        npz_zero_bytes,
        npz_single_array,
        npz_16_bit,
        npz_nan_pixels,
        npz_nan_labels,
        npz_fractional_labels,
        npz_label_outside_classes,
        npz_negative_label,
        npz_multiclass_beyond_card,
        npz_empty_after_filter,
        npz_empty_split,
        npz_pickled_ids,
        npz_ids_in_one_split,
        npz_ids_length,
        npz_four_channels,
        csv_not_utf8,
        csv_zero_byte_image,
        csv_truncated_png,
        csv_truncated_png_after_weasyprint,
        csv_corrupt_jpeg,
        csv_16_bit_png,
        csv_missing_image,
        csv_label_outside_classes,
        csv_label_nan,
        csv_label_word,
        csv_unknown_split,
        csv_missing_split,
        csv_ragged_row,
        csv_mixed_channels,
        csv_empty_after_filter,
        csv_header_only,
        csv_empty_patient,
        dicom_truncated_pixels,
        dicom_not_dicom,
        dicom_zero_bytes,
        dicom_bit_depth,
        dicom_photometric,
        dicom_no_pixels,
        medmnist_unknown,
        medmnist_unreachable,
        medmnist_broken_official,
    )
}


def _matches(message: str, expected: str) -> bool:
    pattern = ".+".join(re.escape(part) for part in expected.split(ANY))
    return re.fullmatch(pattern, message) is not None


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No test here reaches the internet or the user's cache."""
    monkeypatch.setenv("MEDAUDIT_MEDMNIST_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("MEDAUDIT_CACHE", str(tmp_path / "env-cache"))


@pytest.mark.parametrize("name", CORPUS)
def test_loader_refuses_with_one_exact_line(name, tmp_path, monkeypatch):
    case = CORPUS[name](tmp_path, monkeypatch)
    class_names = ("a", "b") if case.section.task == "multiclass" else ()
    with pytest.raises(AuditInputError) as info:
        load_data(case.source, case.section, image_size=16, channels=case.channels, seed=0, class_names=class_names)
    assert _matches(str(info.value), case.message), f"\n got: {info.value}\nwant: {case.message}"
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def targets(tmp_path_factory) -> dict[int, Path]:
    """Tiny ONNX targets (16 px, grey and colour) with complete cards."""
    root = tmp_path_factory.mktemp("targets")
    return {
        c: export(
            TinyNet(channels=c),
            root / f"t{c}.onnx",
            torch.zeros(2, c, 16, 16),
            card={"value_range": [-1, 1], "task": "binary", "class_names": ["a", "b"]},
        )
        for c in (1, 3)
    }


def _scenario(path: Path, section: DataSection) -> Path:
    data = {k: list(v) if isinstance(v, tuple) else v for k, v in section.model_dump(exclude_none=True).items()}
    path.write_text(f"name: corpus\ndata: {data}\n".replace("'", '"'))
    return path


@pytest.mark.parametrize("name", CORPUS)
def test_cli_run_exits_2_with_one_line_and_writes_nothing(name, tmp_path, monkeypatch, targets):
    case = CORPUS[name](tmp_path, monkeypatch)
    scenario = _scenario(tmp_path / "scenario.yaml", case.section)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--target",
            str(targets[case.channels]),
            "--scenario",
            str(scenario),
            "--data",
            case.source,
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "c"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    said = result.stderr.strip()  # `run`'s progress display (not a tty here) leaves a blank line before it
    assert said.startswith("medaudit: error: ") and len(said.splitlines()) == 1
    assert _matches(said[len("medaudit: error: ") :], case.message), result.stderr
    assert not out.exists()


# ---------------------------------------------------------------- mutations of valid files
MUTATIONS_PER_FILE = 10  # seeded truncations and byte flips per valid file
FLIPPED_BYTES = 8  # bytes flipped per flip mutation


def _mutants(raw: bytes, seed: int) -> list[tuple[str, bytes]]:
    """Seeded damaged copies of `raw`: truncations at spread-out lengths, and runs of flipped bytes."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(MUTATIONS_PER_FILE):
        if i % 2 == 0:
            cut = int(rng.integers(0, len(raw)))
            out.append((f"truncate@{cut}", raw[:cut]))
        else:
            damaged = bytearray(raw)
            at = int(rng.integers(0, len(raw) - FLIPPED_BYTES))
            for k in range(at, at + FLIPPED_BYTES):
                damaged[k] ^= int(rng.integers(1, 256))
            out.append((f"flip@{at}", bytes(damaged)))
    return out


@pytest.mark.parametrize("kind", ["npz", "csv", "png", "dcm"])
def test_damaged_files_exit_0_or_2_never_a_traceback(kind, tmp_path, targets):
    if kind == "npz":
        source = write_synthetic_npz(tmp_path / "data.npz")
        victim = source
    else:
        source = _folder(tmp_path, kind="dcm" if kind == "dcm" else "png")
        victim = source if kind == "csv" else tmp_path / f"img1.{kind}"
    raw = victim.read_bytes()
    codes = []
    for label, damaged in _mutants(raw, seed=len(raw)):
        victim.write_bytes(damaged)
        result = CliRunner().invoke(app, ["inspect", str(targets[1]), "--data", str(source)])
        assert result.exit_code in (0, 2), f"{kind} {label}: exit {result.exit_code}\n{result.output}"
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{kind} {label}: {result.exception!r}"
        )
        assert "Traceback" not in result.output
        if result.exit_code == 2:
            assert result.stderr.startswith("medaudit: error: ") and len(result.stderr.splitlines()) == 1, result.stderr
        codes.append(result.exit_code)
    victim.write_bytes(raw)
    assert 2 in codes  # the mutations did damage something
