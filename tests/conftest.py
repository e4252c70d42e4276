"""Shared fixtures: small real models exported to real ONNX/TorchScript, generated images, and the real data.

Real data lives in a data folder beside the checkout (`../shared/data`) or wherever MEDAUDIT_TEST_DATA
points. A test that needs it is skipped with the way to enable it when the folder is absent, and fails
instead when MEDAUDIT_REQUIRE_DATA=1 (CI sets it, so every real-data test runs there). Tests that need no
real images use `synthetic_images`, which any clone can make.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA_ENV = "MEDAUDIT_TEST_DATA"  # folder holding the real data files; default ../shared/data beside the repo
REQUIRE_ENV = "MEDAUDIT_REQUIRE_DATA"  # "1": a missing real-data file fails the test instead of skipping it
DATA_DIR = Path(os.environ.get(DATA_ENV) or REPO.parent / "shared" / "data")


def data_file(name: str) -> Path:
    """A real data file from the data folder; skip (or, with MEDAUDIT_REQUIRE_DATA=1, fail) when it is absent."""
    path = DATA_DIR / name
    if path.is_file():
        return path
    reason = (
        f"real-data test: {path} not found; to run it set {DATA_ENV}=DIR (a folder holding {name}) "
        "or put shared/data beside the checkout"
    )
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1 turns this skip into a failure)")
    pytest.skip(reason)


def synthetic_images(n: int, size: int = 16, channels: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, size, size) or (n, size, size, 3), labels (n,) 0/1): smooth noise, positives carry a
    bright disc at a random place, so a small model can learn the labels. Generated, never real data."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.uint8)
    rng.shuffle(labels)
    yy, xx = np.mgrid[:size, :size]
    images = rng.normal(100, 20, (n, size, size))
    for i in np.flatnonzero(labels):
        cy, cx = rng.integers(size // 4, size - size // 4, 2)
        images[i] += 90 * (((yy - cy) ** 2 + (xx - cx) ** 2) < (size / 5) ** 2)
    images = np.clip(images, 0, 255).astype(np.uint8)
    if channels == 3:
        images = np.stack([images, images // 2 + 60, 255 - images], axis=-1)
    return images, labels


def write_synthetic_npz(
    path: Path, *, size: int = 16, channels: int = 1, counts=(48, 16, 32), patient_ids: bool = False, seed: int = 0
) -> Path:
    """A MedMNIST-style .npz of generated images: train/val/test with `counts` images, labels (N, 1)."""
    arrays = {}
    for offset, (split, n) in enumerate(zip(("train", "val", "test"), counts)):
        images, labels = synthetic_images(n, size, channels, seed + offset)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
        if patient_ids:
            arrays[f"{split}_patient_ids"] = np.array([f"{split}-p{i // 2}" for i in range(n)])
    np.savez(path, **arrays)
    return path


class TinyNet(torch.nn.Module):
    """A seeded two-conv classifier on canonical [-1, 1] NCHW images, two logits out."""

    def __init__(self, channels: int = 1, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = torch.nn.Conv2d(channels, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1, stride=2)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(h.mean(dim=(2, 3)))


def export(
    module: torch.nn.Module,
    path: Path,
    dummy: torch.Tensor,
    *,
    card: dict | None = None,
    dynamic: bool = True,
    output_names=("scores",),
) -> Path:
    """torch.onnx.export a module (legacy exporter), optionally with a medaudit card in the metadata."""
    import onnx

    dynamic_axes = {"image": {0: "batch"}, **{n: {0: "batch"} for n in output_names}} if dynamic else None
    torch.onnx.export(
        module.eval(),
        (dummy,),
        str(path),
        input_names=["image"],
        output_names=list(output_names),
        dynamic_axes=dynamic_axes,
        opset_version=17,
        dynamo=False,
    )
    if card is not None:
        proto = onnx.load(str(path))
        entry = proto.metadata_props.add()
        entry.key, entry.value = "medaudit.card", json.dumps(card)
        onnx.save(proto, str(path))
    return path


TINY_CARD = {
    "architecture": "tiny_cnn",
    "value_range": [-1, 1],
    "task": "binary",
    "class_names": ["n", "p"],
    "output_kind": "logits",
}


def tiny_target(path: Path, seed: int = 0) -> Path:
    """A seeded, untrained TinyNet deployed as ONNX on 16x16 grey images, its card in the metadata."""
    return export(TinyNet(1, seed=seed), path, torch.zeros(1, 1, 16, 16), card=TINY_CARD)


def write_dicom(path: Path, pixels: np.ndarray, **elements) -> Path:
    """A real DICOM file (Secondary Capture, explicit VR little endian) of 8-bit `pixels` stored as 12-bit values in
    16 bits, as scanners store them; `elements` override data elements (e.g. BitsStored=20)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = (pixels.astype(np.uint16) * 16).tobytes()  # 12-bit values
    for key, value in elements.items():
        setattr(ds, key, value)
    ds.save_as(str(path), enforce_file_format=True)
    return path


@pytest.fixture(scope="session")
def pneumonia_path() -> Path:
    """Real PneumoniaMNIST chest X-rays (28 px, no patient ids)."""
    return data_file("pneumoniamnist.npz")


@pytest.fixture(scope="session")
def retina_path() -> Path:
    """Real RetinaMNIST fundus photographs (28 px colour), the official file (MD5 checked by the tests)."""
    return data_file("retinamnist.npz")


@pytest.fixture(scope="session")
def chest128_path() -> Path:
    """Real 128 px chest X-rays with `{split}_patient_ids` (patient-level split)."""
    return data_file("chestxray_kermany_128.npz")


@pytest.fixture
def synthetic_npz(tmp_path) -> Path:
    """A small MedMNIST-style .npz of generated 16 px grey images (no real data)."""
    return write_synthetic_npz(tmp_path / "synthetic.npz")


@pytest.fixture
def canonical_batch() -> np.ndarray:
    """Eight generated grey images, 16x16, canonical [-1, 1]."""
    from medaudit.data.audit_data import to_canonical

    return to_canonical(synthetic_images(8, 16)[0], 16)
