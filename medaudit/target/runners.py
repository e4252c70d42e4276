"""The two ways a target model is run: ONNX in onnxruntime, TorchScript through torch; neither unpickles.

A runner says what its graph declares (metadata, inputs, outputs, the final op) and turns target-contract inputs
into raw output rows. Everything about the card (which field comes from where) lives in `medaudit.target.card`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medaudit.core import AuditInputError

CARD_METADATA_KEY = "medaudit.card"  # ONNX metadata key holding the card as JSON
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(double)": "float64",
}  # onnxruntime input types -> the card's dtype
FINAL_OPS = {"Softmax": "softmax", "Sigmoid": "sigmoid"}  # a graph's last op -> the card's output_kind


@dataclass(frozen=True)
class InputFacts:
    """What a model declares about one input (None where it does not say)."""

    dtype: str | None  # the card's dtype names
    shape: tuple[int | str, ...] | None  # declared shape; symbolic dimensions by name
    layout: str | None  # NCHW | NHWC, read off the shape when unambiguous
    channels: int | None
    input_size: tuple[int, int] | None  # (height, width) when the shape fixes them

    @property
    def batch_size(self) -> int | None:
        """A fixed batch size the graph demands (None: any)."""
        return self.shape[0] if self.shape and isinstance(self.shape[0], int) else None


def layout_from_shape(shape: tuple, where: str) -> tuple[str | None, int | None, tuple[int, int] | None]:
    """Guess (layout, channels, (H, W)) from a rank-4 input shape whose entries are ints or names."""
    if len(shape) != 4:
        raise AuditInputError(
            f"{where}: the model input has rank {len(shape)} ({shape}); medaudit audits "
            "image models with a rank-4 input (NCHW or NHWC); wrap the model to take one"
        )
    d1, d2, d3 = shape[1], shape[2], shape[3]
    nchw = isinstance(d1, int) and d1 in (1, 3)
    nhwc = isinstance(d3, int) and d3 in (1, 3)
    if nchw and not nhwc:
        size = (d2, d3) if isinstance(d2, int) and isinstance(d3, int) else None
        return "NCHW", d1, size
    if nhwc and not nchw:
        size = (d1, d2) if isinstance(d1, int) and isinstance(d2, int) else None
        return "NHWC", d3, size
    return None, None, None


class OnnxRunner:
    """An ONNX model in onnxruntime (parsed, never unpickled); CUDA when onnxruntime offers it."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable files
            first = str(exc).strip().splitlines()[0][:200]
            raise AuditInputError(
                f"{path}: not a readable ONNX model ({first}); export it with torch.onnx.export "
                "or check the file was copied whole"
            ) from None
        self.path = path
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    def metadata_card(self) -> dict | None:
        """The card stored in the ONNX metadata as JSON (unvalidated), None when the model has none."""
        meta = self.session.get_modelmeta().custom_metadata_map
        if CARD_METADATA_KEY not in meta:
            return None
        try:
            raw = json.loads(meta[CARD_METADATA_KEY])
        except json.JSONDecodeError as exc:
            raise AuditInputError(
                f"{self.path}: ONNX metadata `{CARD_METADATA_KEY}` is not valid JSON ({exc})"
            ) from None
        if not isinstance(raw, dict):
            raise AuditInputError(
                f"{self.path}: ONNX metadata `{CARD_METADATA_KEY}` is not a JSON object of card fields"
            )
        return raw

    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    def input_facts(self, input_name: str) -> InputFacts:
        """What the graph says of one input: dtype, its shape as declared, and the layout read off the shape."""
        inputs = {i.name: i for i in self.session.get_inputs()}
        if input_name not in inputs:
            raise AuditInputError(
                f"{self.path}: card input_name {input_name!r} is not a model input; inputs: {', '.join(inputs)}"
            )
        inp = inputs[input_name]
        if inp.type not in ORT_DTYPES:
            raise AuditInputError(
                f"{self.path}: input {inp.name!r} has type {inp.type}; medaudit feeds {', '.join(ORT_DTYPES)}"
            )
        shape = tuple(d if isinstance(d, int) and d > 0 else str(d) for d in inp.shape)
        layout, channels, size = layout_from_shape(shape, f"{self.path} input {inp.name!r}")
        return InputFacts(dtype=ORT_DTYPES[inp.type], shape=shape, layout=layout, channels=channels, input_size=size)

    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def output_columns(self, output_name: str) -> int | None:
        """Columns of a rank-2 output whose width the graph fixes; None when the graph does not say."""
        shape = {o.name: o.shape for o in self.session.get_outputs()}.get(output_name)
        return shape[1] if shape is not None and len(shape) == 2 and isinstance(shape[1], int) else None

    def final_op(self, output_name: str) -> str | None:
        """Output kind from the op that produces the output (Softmax/Sigmoid), parsed with onnx."""
        import onnx

        model = onnx.load(str(self.path), load_external_data=False)
        for node in model.graph.node:
            if output_name in node.output:
                return FINAL_OPS.get(node.op_type, "logits")
        return None

    def __call__(self, x: np.ndarray, input_name: str, output_name: str) -> np.ndarray:
        return self.session.run([output_name], {input_name: x})[0]


class TorchScriptRunner:
    """A TorchScript model through `torch.jit.load` (the format carries code, not pickled objects), on the CPU."""

    device = "cpu"

    def __init__(self, path: Path):
        import torch

        try:
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:  # torch raises RuntimeError/ValueError variants for non-TorchScript files
            first = str(exc).strip().splitlines()[0][:200]
            raise AuditInputError(
                f"{path}: not a readable TorchScript model ({first}); save it with "
                "torch.jit.script/trace and torch.jit.save"
            ) from None
        self.path = path

    def metadata_card(self) -> dict | None:
        return None  # TorchScript carries no card; give a sidecar or the scenario's target.card

    def input_names(self) -> list[str]:
        return ["input"]  # a TorchScript forward takes one tensor; the name only labels it

    def input_facts(self, input_name: str) -> InputFacts:
        """TorchScript declares no input shape; by convention it takes float32 NCHW tensors."""
        return InputFacts(dtype="float32", shape=None, layout="NCHW", channels=None, input_size=None)

    def output_names(self) -> list[str]:
        return ["output"]

    def output_columns(self, output_name: str) -> int | None:
        return None  # TorchScript does not record output shapes

    def final_op(self, output_name: str) -> str | None:
        return None

    def __call__(self, x: np.ndarray, input_name: str, output_name: str) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.module(torch.from_numpy(x))
        if isinstance(out, dict):
            if output_name not in out:
                raise AuditInputError(
                    f"{self.path}: model returns outputs {sorted(out)}; set target card `output_name` to one of them"
                )
            out = out[output_name]
        elif isinstance(out, (tuple, list)):
            if not output_name.isdigit():
                raise AuditInputError(
                    f"{self.path}: model returns {len(out)} outputs; set target card "
                    f"`output_name` to an index 0..{len(out) - 1}"
                )
            out = out[int(output_name)]
        return out.float().numpy()
