"""Export a trained PyTorch classifier as an auditable ONNX target, its card in the metadata.

Used by the demo and the paper reproduction to make targets; a user's own deployed model needs none
of this (it comes with its own file and card).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from medaudit.core import atomic_write
from medaudit.target.runners import CARD_METADATA_KEY


class _Softmax(torch.nn.Module):
    """Deployed models often end in a softmax; the audit reads that from the graph."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def export_onnx(
    model: torch.nn.Module, path: Path, *, card: dict, channels: int, image_size: int, softmax: bool = True
) -> Path:
    """Write `model` (canonical [-1, 1] NCHW input) to ONNX with `card` as metadata `medaudit.card`."""
    import onnx

    module = (_Softmax(model) if softmax else model).eval().to(memory_format=torch.contiguous_format).cpu()
    dummy = torch.zeros(2, channels, image_size, image_size)
    buffer = io.BytesIO()
    torch.onnx.export(
        module,
        (dummy,),
        buffer,
        input_names=["image"],
        output_names=["scores"],
        dynamic_axes={"image": {0: "batch"}, "scores": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_METADATA_KEY, json.dumps(card)
    return atomic_write(path, proto.SerializeToString())
