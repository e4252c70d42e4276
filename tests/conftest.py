"""Shared fixtures: small real models exported to real ONNX/TorchScript, and the real chest X-rays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PNEUMONIA = SHARED_DATA / "pneumoniamnist.npz"


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


def export(module: torch.nn.Module, path: Path, dummy: torch.Tensor, *, card: dict | None = None,
           dynamic: bool = True, output_names=("scores",)) -> Path:
    """torch.onnx.export a module (legacy exporter), optionally with a medaudit card in the metadata."""
    import onnx

    dynamic_axes = {"image": {0: "batch"}, **{n: {0: "batch"} for n in output_names}} if dynamic else None
    torch.onnx.export(module.eval(), (dummy,), str(path), input_names=["image"], output_names=list(output_names),
                      dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)
    if card is not None:
        proto = onnx.load(str(path))
        entry = proto.metadata_props.add()
        entry.key, entry.value = "medaudit.card", json.dumps(card)
        onnx.save(proto, str(path))
    return path


@pytest.fixture(scope="session")
def pneumonia_path() -> Path:
    if not PNEUMONIA.is_file():
        pytest.fail(f"{PNEUMONIA} missing: the tests need ../shared/data beside the checkout")
    return PNEUMONIA


@pytest.fixture
def canonical_batch() -> np.ndarray:
    """Eight real chest X-rays, 16x16, canonical [-1, 1]."""
    from medaudit.data import to_canonical

    with np.load(PNEUMONIA) as npz:
        return to_canonical(npz["test_images"][:8], 16)
