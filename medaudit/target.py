"""The deployed model under audit, as a black box: canonical [-1, 1] images in, class scores out.

A `TargetCard` is the model's input/output contract. Its fields come, highest priority first, from
the scenario's `target.card`, a sidecar `MODEL.card.yaml`, ONNX metadata key `medaudit.card`, and
what the graph shows (shapes, dtype, a final Softmax/Sigmoid); every field records its source.
ONNX models run in onnxruntime (parsed, never unpickled); TorchScript through `torch.jit.load`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from medaudit.errors import AuditInputError, describe_validation_error
from medaudit.files import sha256_file
from medaudit.scenario import CardFields

CARD_METADATA_KEY = "medaudit.card"
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(double)": "float64",
}
_FINAL_OPS = {"Softmax": "softmax", "Sigmoid": "sigmoid"}


class TargetCard(CardFields):
    """A complete card: every field the audit needs is set, and `sources` says where each came from."""

    sources: dict[str, str] = {}  # card field -> "scenario" | "sidecar" | "onnx metadata" | "graph" | ...
    batch_size: int | None = None  # fixed batch size the graph demands; None = any

    @property
    def n_outputs(self) -> int:
        return len(self.class_names) if self.class_names else 1


# ---------------------------------------------------------------- canonical <-> target contract
def to_target(x_pm1: np.ndarray, card: CardFields) -> np.ndarray:
    """Map canonical images (N, C, H, W) float32 in [-1, 1] onto the target's input contract."""
    x = (np.asarray(x_pm1, dtype=np.float32) + 1.0) / 2.0
    if x.shape[1] == 1 and card.channels == 3:
        x = np.repeat(x, 3, axis=1)
    if card.mean is not None:
        mean = np.asarray(card.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(card.std, np.float32).reshape(1, -1, 1, 1)
        x = (x - mean) / std
    else:
        lo, hi = card.value_range
        x = lo + x * (hi - lo)
    if card.dtype == "uint8":
        x = np.clip(np.rint(x), 0, 255)
    if card.layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x.astype(card.dtype))


def from_target(x: np.ndarray, card: CardFields) -> np.ndarray:
    """Inverse of `to_target`: target-contract images back to canonical (N, C, H, W) in [-1, 1]."""
    x = np.asarray(x, dtype=np.float32)
    if card.layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    if card.mean is not None:
        mean = np.asarray(card.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(card.std, np.float32).reshape(1, -1, 1, 1)
        x01 = x * std + mean
    else:
        lo, hi = card.value_range
        x01 = (x - lo) / (hi - lo)
    return np.ascontiguousarray(x01 * 2.0 - 1.0, dtype=np.float32)


# ---------------------------------------------------------------- card resolution
def _read_sidecar(model_path: Path) -> dict:
    sidecar = model_path.with_name(model_path.name + ".card.yaml")
    if not sidecar.is_file():
        sidecar = model_path.with_suffix(".card.yaml")
    if not sidecar.is_file():
        return {}
    try:
        raw = yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise AuditInputError(f"{sidecar}: YAML syntax error in the target card: {exc}") from None
    if not isinstance(raw, dict):
        raise AuditInputError(f"{sidecar}: a target card is a YAML mapping of card fields")
    return _validated_card(raw, str(sidecar))


def _validated_card(raw: dict, where: str) -> dict:
    from pydantic import ValidationError

    try:
        return CardFields.model_validate(raw).model_dump(exclude_none=True)
    except ValidationError as err:
        raise AuditInputError(f"{where}: card {describe_validation_error(err)}") from None


def _merge(layers: list[tuple[str, dict]]) -> tuple[dict, dict[str, str]]:
    """Later layers win; return the merged fields and each field's source."""
    merged, sources = {}, {}
    for source, fields in layers:
        for key, value in fields.items():
            if value is not None:
                merged[key] = value
                sources[key] = source
    return merged, sources


def _layout_from_shape(shape: list, where: str) -> tuple[str | None, int | None, tuple[int, int] | None]:
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


# ---------------------------------------------------------------- runners
class _OnnxRunner:
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

    def graph_facts(self) -> tuple[dict, dict]:
        """(fields read from ONNX metadata, fields inferred from the graph)."""
        meta = self.session.get_modelmeta().custom_metadata_map
        from_meta = {}
        if CARD_METADATA_KEY in meta:
            try:
                raw = json.loads(meta[CARD_METADATA_KEY])
            except json.JSONDecodeError as exc:
                raise AuditInputError(
                    f"{self.path}: ONNX metadata `{CARD_METADATA_KEY}` is not valid JSON ({exc})"
                ) from None
            from_meta = _validated_card(raw, f"{self.path} metadata `{CARD_METADATA_KEY}`")
        inputs = self.session.get_inputs()
        inferred: dict = {}
        if len(inputs) == 1:
            inferred["input_name"] = inputs[0].name
        return from_meta, inferred

    def input_facts(self, input_name: str) -> dict:
        inputs = {i.name: i for i in self.session.get_inputs()}
        if input_name not in inputs:
            raise AuditInputError(
                f"{self.path}: card input_name {input_name!r} is not a model input; inputs: {', '.join(inputs)}"
            )
        inp = inputs[input_name]
        facts: dict = {}
        if inp.type not in _ORT_DTYPES:
            raise AuditInputError(
                f"{self.path}: input {inp.name!r} has type {inp.type}; medaudit feeds {', '.join(_ORT_DTYPES)}"
            )
        facts["dtype"] = _ORT_DTYPES[inp.type]
        shape = [d if isinstance(d, int) and d > 0 else str(d) for d in inp.shape]
        layout, channels, size = _layout_from_shape(shape, f"{self.path} input {inp.name!r}")
        facts.update({k: v for k, v in (("layout", layout), ("channels", channels), ("input_size", size)) if v})
        facts["_shape"] = shape
        return facts

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
                return _FINAL_OPS.get(node.op_type, "logits")
        return None

    def __call__(self, x: np.ndarray, input_name: str, output_name: str) -> np.ndarray:
        return self.session.run([output_name], {input_name: x})[0]


class _TorchScriptRunner:
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

    def graph_facts(self) -> tuple[dict, dict]:
        return {}, {"input_name": "input", "layout": "NCHW", "dtype": "float32"}

    def input_facts(self, input_name: str) -> dict:
        return {}

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


# ---------------------------------------------------------------- the target
@dataclass
class Target:
    """A loaded black-box target. Every image it scores is counted in `queries`."""

    path: Path
    sha256: str
    card: TargetCard
    runner: object
    queries: int = 0  # images scored by the target, over the whole audit
    calls: int = 0
    check_report: dict = field(default_factory=dict)

    @property
    def device(self) -> str:
        return self.runner.device

    def raw_outputs(self, x_pm1: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The model's raw output rows (N, n_out) for canonical images, batched (padded if fixed)."""
        card = self.card
        fixed = card.batch_size
        step = fixed or batch_size
        rows = []
        for start in range(0, len(x_pm1), step):
            chunk = x_pm1[start : start + step]
            n = len(chunk)
            if fixed and n < fixed:  # a fixed-batch graph: pad with copies, drop their rows
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
            out = np.asarray(self.runner(to_target(chunk, card), card.input_name, card.output_name))
            self.calls += 1
            self.queries += n
            out = out.reshape(out.shape[0], -1)[:n].astype(np.float64)
            rows.append(out)
        return np.concatenate(rows)

    def scores(self, x_pm1: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Probability-like scores: (N,) of the positive class (binary) or (N, K); float64."""
        return outputs_to_scores(self.raw_outputs(x_pm1, batch_size), self.card)

    def check(self, x_pm1: np.ndarray) -> dict:
        """Run the model on audit images and check its outputs against the card; raise on mismatch."""
        card, where = self.card, f"{self.path}"
        out = self.raw_outputs(x_pm1)
        expected = {"binary": (1, 2)}.get(card.task, (card.n_outputs,))
        if out.shape[1] not in expected:
            want = " or ".join(map(str, expected))
            raise AuditInputError(
                f"{where}: the model gives {out.shape[1]} output column(s), the card's task "
                f"{card.task!r} with {card.n_outputs} class name(s) needs {want}; fix card "
                "`task`/`class_names` or `output_name`"
            )
        if not np.all(np.isfinite(out)):
            raise AuditInputError(
                f"{where}: the model returns NaN/inf on the audit images; check the card's value_range or mean/std"
            )
        again = self.raw_outputs(x_pm1)
        max_diff = float(np.max(np.abs(again - out)))
        if max_diff > 1e-4:
            raise AuditInputError(
                f"{where}: the same input gave outputs differing by {max_diff:.3g}; export "
                "the model in eval mode (dropout and batch-norm updates off)"
            )
        if card.output_kind == "softmax" and out.shape[1] > 1:
            worst = float(np.max(np.abs(out.sum(axis=1) - 1)))
            if worst > 1e-3:
                raise AuditInputError(
                    f"{where}: card says output_kind softmax but rows sum to 1 +/- {worst:.3g}; "
                    "set output_kind to logits or sigmoid"
                )
        if card.output_kind in ("softmax", "sigmoid") and (out.min() < -1e-6 or out.max() > 1 + 1e-6):
            raise AuditInputError(
                f"{where}: card says output_kind {card.output_kind} but outputs leave [0, 1] "
                f"(min {out.min():.3g}, max {out.max():.3g}); set output_kind to logits"
            )
        self.check_report = {
            "images": int(len(x_pm1)),
            "output_columns": int(out.shape[1]),
            "deterministic_max_diff": max_diff,
            "passed": True,
        }
        return self.check_report


def outputs_to_scores(out: np.ndarray, card: CardFields) -> np.ndarray:
    """Raw output rows -> probabilities (float64; sigmoid/softmax of logits, monotone per class)."""
    out = np.asarray(out, dtype=np.float64)
    if card.output_kind == "logits":
        if card.task == "multiclass" or (card.task == "binary" and out.shape[1] == 2):
            z = out - out.max(axis=1, keepdims=True)
            out = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        else:
            out = 1.0 / (1.0 + np.exp(-out))
    if card.task == "binary":
        return out[:, 0] if out.shape[1] == 1 else out[:, card.positive_index if card.positive_index is not None else 1]
    return out


# ---------------------------------------------------------------- what the file is
ZIP_MAGIC = b"PK\x03\x04"  # TorchScript archives and torch.save files are zip archives
PICKLE_MAGIC = b"\x80"  # pickle protocol 2+ starts with PROTO (0x80); legacy torch.save files too
HDF5_MAGIC = b"\x89HDF"
SNIFF_BYTES = 16  # bytes read to recognise a file type
NEVER_UNPICKLE = (
    "medaudit never unpickles (a pickle can run code); export the model with torch.onnx.export, "
    "or torch.jit.script/trace and torch.jit.save"
)


def model_file_kind(path: Path) -> str:
    """ "torchscript" or "onnx" (anything unrecognised is tried as ONNX); raise naming what the file is otherwise."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head:
        raise AuditInputError(f"{path}: the model file is empty (0 bytes)")
    if head.startswith(ZIP_MAGIC):
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise AuditInputError(
                f"{path}: a damaged zip archive ({str(exc)[:120]}); check the file was copied whole"
            ) from None
        if any("/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            raise AuditInputError(
                f"{path}: a zip written by torch.save (a pickled state_dict or model, no TorchScript "
                f"code), not an ONNX or TorchScript model; {NEVER_UNPICKLE}"
            )
        raise AuditInputError(f"{path}: a zip archive that is not a TorchScript model; {NEVER_UNPICKLE}")
    if head.startswith(PICKLE_MAGIC):
        raise AuditInputError(
            f"{path}: a raw Python pickle (e.g. an old-style torch.save of a state_dict or model), "
            f"not an ONNX or TorchScript model; {NEVER_UNPICKLE}"
        )
    if head.startswith(HDF5_MAGIC):
        raise AuditInputError(
            f"{path}: an HDF5 file (e.g. a Keras .h5 model), not an ONNX or TorchScript model; "
            "convert it to ONNX (e.g. tf2onnx)"
        )
    if len(head) > 9 and head[8:10] == b'{"':
        raise AuditInputError(
            f"{path}: a safetensors file (weights without a graph), not an ONNX or TorchScript "
            "model; export the model with torch.onnx.export"
        )
    return "onnx"


# ---------------------------------------------------------------- card resolution without refusing gaps
CARD_HOMES = "scenario `target.card`, {name}.card.yaml, or ONNX metadata `" + CARD_METADATA_KEY + "`"
REQUIRED_FIELDS = (
    ("input_size", "input_size: [64, 64]"),
    ("channels", "channels: 3"),
    ("layout", "layout: NCHW"),
    ("dtype", "dtype: float32"),
    ("output_kind", "output_kind: logits"),
    ("task", "task: binary"),
)


@dataclass(frozen=True)
class MissingField:
    """A card field the audit needs that neither the model nor any card supplies."""

    field: str  # card field name
    yaml_line: str  # the exact line that would supply it, e.g. "task: binary"
    message: str  # the one-line error load_target raises for it


@dataclass(frozen=True)
class CardReading:
    """Every card field that could be read, where each came from, and what is still missing (gaps not refused)."""

    path: Path
    fields: dict  # card field -> value (read from a layer, the graph, or derived)
    sources: dict  # card field -> "scenario" | "sidecar" | "onnx metadata" | "graph" | "default ..." | "not used: ..."
    missing: tuple[MissingField, ...]  # in the order the audit needs them; empty when the card is complete
    runner: object  # the loaded _OnnxRunner / _TorchScriptRunner
    batch_size: int | None  # fixed batch size the graph demands; None = any


def read_card(path: str | Path, card_overrides: CardFields | None = None, *, task: str | None = None) -> CardReading:
    """Load the model and resolve as much of its card as the layers and the graph give; record gaps in `missing`.
    Contradictions (card vs graph) and unreadable files still raise AuditInputError."""
    path = Path(path)
    if not path.is_file():
        raise AuditInputError(f"{path}: target model file not found; give an .onnx or TorchScript .pt file")
    runner = _TorchScriptRunner(path) if model_file_kind(path) == "torchscript" else _OnnxRunner(path)
    from_meta, from_graph = runner.graph_facts()
    layers = [("graph", from_graph), ("onnx metadata", from_meta), ("sidecar", _read_sidecar(path))]
    if card_overrides is not None:
        layers.append(("scenario", card_overrides.model_dump(exclude_none=True)))
    fields, sources = _merge(layers)
    where_to_fix = CARD_HOMES.format(name=path.name)
    missing: list[MissingField] = []

    outputs = runner.output_names()
    if "output_name" not in fields:
        if len(outputs) > 1:
            missing.append(
                MissingField(
                    "output_name",
                    f"output_name: {outputs[0]}  # one of: {', '.join(outputs)}",
                    f"{path}: the model has {len(outputs)} outputs ({', '.join(outputs)}); set "
                    "target card `output_name` to the one with class scores",
                )
            )
        else:
            fields["output_name"], sources["output_name"] = outputs[0], "graph"
    elif isinstance(runner, _OnnxRunner) and fields["output_name"] not in outputs:
        raise AuditInputError(
            f"{path}: card output_name {fields['output_name']!r} is not a model output; outputs: {', '.join(outputs)}"
        )
    shape = None
    if "input_name" not in fields:
        names = [i.name for i in runner.session.get_inputs()] if isinstance(runner, _OnnxRunner) else ["input"]
        missing.append(
            MissingField(
                "input_name",
                f"input_name: {names[0]}  # one of: {', '.join(names)}",
                f"{path}: the model has several inputs; set target card `input_name`",
            )
        )
    else:
        facts = runner.input_facts(fields["input_name"])
        shape = facts.pop("_shape", None)
        for key, value in facts.items():
            if key not in fields:
                fields[key], sources[key] = value, "graph"
            elif fields[key] != value and key in ("channels", "dtype", "layout", "input_size"):
                raise AuditInputError(
                    f"{path}: card `{key}` is {fields[key]!r} ({sources[key]}) but the model input "
                    f"{shape} says {value!r}; fix the card"
                )
    batch = shape[0] if shape and isinstance(shape[0], int) else None

    if "output_kind" not in fields and "output_name" in fields:
        kind = runner.final_op(fields["output_name"])
        if kind:
            fields["output_kind"], sources["output_kind"] = kind, "graph (final op)"
    if "value_range" not in fields and "mean" not in fields and fields.get("dtype") == "uint8":
        fields["value_range"], sources["value_range"] = (0.0, 255.0), "graph (uint8 input)"
    if "task" not in fields and task:
        fields["task"], sources["task"] = task, "scenario data.task"
    columns = runner.output_columns(fields["output_name"]) if "output_name" in fields else None
    if fields.get("task") == "binary" and "positive_index" not in fields:
        if columns == 1:
            sources["positive_index"] = "not used: one output column"
        else:
            fields["positive_index"], sources["positive_index"] = 1, "default (binary: column 1 of two)"
    if "class_names" not in fields and fields.get("task") == "binary":
        fields["class_names"], sources["class_names"] = ("positive",), "default"

    for required, example in REQUIRED_FIELDS:
        if required not in fields:
            missing.append(
                MissingField(
                    required,
                    example,
                    f"{path}: target card field `{required}` is unknown and cannot be read from "
                    f"the model; add `{example}` to {where_to_fix}",
                )
            )
    if "value_range" not in fields and "mean" not in fields:
        missing.append(
            MissingField(
                "value_range",
                "value_range: [0, 1]  # or mean: [...] and std: [...]",
                f"{path}: target card has no input value range; add `value_range: [0, 1]` (or "
                f"mean/std) to {where_to_fix}",
            )
        )
    if fields.get("mean") is not None and "channels" in fields and len(fields["mean"]) not in (1, fields["channels"]):
        raise AuditInputError(
            f"{path}: card mean/std have {len(fields['mean'])} values for {fields['channels']} channels"
        )
    return CardReading(
        path=path, fields=fields, sources=sources, missing=tuple(missing), runner=runner, batch_size=batch
    )


def load_target(path: str | Path, card_overrides: CardFields | None = None, *, task: str | None = None) -> Target:
    """Load an ONNX or TorchScript target and resolve its card; raise AuditInputError on any gap."""
    reading = read_card(path, card_overrides, task=task)
    if reading.missing:
        raise AuditInputError(reading.missing[0].message)
    fields, sources = dict(reading.fields), dict(reading.sources)
    for key in set(fields) - set(sources):
        sources[key] = "derived"
    card = TargetCard(**fields, sources=sources, batch_size=reading.batch_size)
    return Target(path=reading.path, sha256=sha256_file(reading.path), card=card, runner=reading.runner)
