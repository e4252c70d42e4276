"""The target card: the deployed model's input/output contract, resolved field by field with each field's source.

Fields come, highest priority first, from the scenario's `target.card`, a sidecar `MODEL.card.yaml`, the ONNX
metadata key `medaudit.card`, and what the graph shows (input shape, dtype, a final Softmax/Sigmoid). What the
file is comes first: medaudit refuses, by name, the formats it will not load (pickles, HDF5, safetensors).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from pydantic import ValidationError

from medaudit.core import AuditInputError, describe_validation_error
from medaudit.scenario import CardFields
from medaudit.target.runners import CARD_METADATA_KEY, OnnxRunner, TorchScriptRunner

ZIP_MAGIC = b"PK\x03\x04"  # TorchScript archives and torch.save files are zip archives
PICKLE_MAGIC = b"\x80"  # pickle protocol 2+ starts with PROTO (0x80); legacy torch.save files too
HDF5_MAGIC = b"\x89HDF"
SNIFF_BYTES = 16  # bytes read to recognise a file type
NEVER_UNPICKLE = (
    "medaudit never unpickles (a pickle can run code); export the model with torch.onnx.export, "
    "or torch.jit.script/trace and torch.jit.save"
)
CARD_HOMES = "scenario `target.card`, {name}.card.yaml, or ONNX metadata `" + CARD_METADATA_KEY + "`"
REQUIRED_FIELDS = (
    ("input_size", "input_size: [64, 64]"),
    ("channels", "channels: 3"),
    ("layout", "layout: NCHW"),
    ("dtype", "dtype: float32"),
    ("output_kind", "output_kind: logits"),
    ("task", "task: binary"),
)  # card fields the audit cannot run without, each with the line that supplies it
GRAPH_CHECKED = ("channels", "dtype", "layout", "input_size")  # a card value that contradicts the graph is refused


class TargetCard(CardFields):
    """A complete card: every field the audit needs is set, and `sources` says where each came from."""

    sources: dict[str, str] = {}  # card field -> "scenario" | "sidecar" | "onnx metadata" | "graph" | ...
    batch_size: int | None = None  # fixed batch size the graph demands; None = any

    @property
    def n_outputs(self) -> int:
        return len(self.class_names) if self.class_names else 1


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
    fields: CardFields  # every field read from a layer, the graph, or derived (None where unknown)
    sources: dict[str, str]  # card field -> "scenario" | "sidecar" | "graph" | "default ..." | "not used: ..."
    missing: tuple[MissingField, ...]  # in the order the audit needs them; empty when the card is complete
    runner: OnnxRunner | TorchScriptRunner
    batch_size: int | None  # fixed batch size the graph demands; None = any

    def card(self) -> TargetCard:
        """The complete card; raise the first missing field's one-line error when there is a gap."""
        if self.missing:
            raise AuditInputError(self.missing[0].message)
        fields = self.fields.model_dump(exclude_none=True)
        sources = {key: self.sources.get(key, "derived") for key in fields} | {
            key: value for key, value in self.sources.items() if key not in fields
        }
        return TargetCard(**fields, sources=sources, batch_size=self.batch_size)


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


def open_model(path: Path) -> OnnxRunner | TorchScriptRunner:
    """The runner for a model file, by what the file is."""
    return TorchScriptRunner(path) if model_file_kind(path) == "torchscript" else OnnxRunner(path)


def _validated(raw: dict, where: str) -> dict:
    """A card layer's fields, validated; only the fields it sets."""
    try:
        return CardFields.model_validate(raw).model_dump(exclude_none=True)
    except ValidationError as err:
        raise AuditInputError(f"{where}: card {describe_validation_error(err)}") from None


def _sidecar(model_path: Path) -> dict:
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
    return _validated(raw, str(sidecar))


def _merge(layers: list[tuple[str, dict]]) -> tuple[dict, dict[str, str]]:
    """Later layers win; return the merged fields and each field's source."""
    merged, sources = {}, {}
    for source, fields in layers:
        for key, value in fields.items():
            if value is not None:
                merged[key] = value
                sources[key] = source
    return merged, sources


def _probed_columns(runner, fields: dict, batch_size: int | None, path: Path) -> int | None:
    """Output columns learned by running the model once on a blank input of the card's shape, where the graph does
    not declare them (TorchScript, dynamic ONNX outputs); None while the input contract is still incomplete."""
    if not all(k in fields for k in ("input_size", "channels", "layout", "dtype", "input_name", "output_name")):
        return None
    h, w = fields["input_size"]
    c = fields["channels"]
    shape = (batch_size or 1, c, h, w) if fields["layout"] == "NCHW" else (batch_size or 1, h, w, c)
    try:
        out = np.asarray(runner(np.zeros(shape, dtype=fields["dtype"]), fields["input_name"], fields["output_name"]))
    except AuditInputError:
        raise
    except Exception as exc:  # the model's own runtime error on an input of the card's shape
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise AuditInputError(
            f"{path}: the model fails on a blank input of the card's shape {shape} ({detail}); check the card's "
            "input_size, channels, layout and dtype"
        ) from None
    return int(out.reshape(out.shape[0], -1).shape[1])


def read_card(path: str | Path, card_overrides: CardFields | None = None, *, task: str | None = None) -> CardReading:
    """Load the model and resolve as much of its card as the layers and the graph give; record gaps in `missing`.
    Contradictions (card vs graph) and unreadable files still raise AuditInputError."""
    path = Path(path)
    if not path.is_file():
        raise AuditInputError(f"{path}: target model file not found; give an .onnx or TorchScript .pt file")
    runner = open_model(path)
    inputs, outputs = runner.input_names(), runner.output_names()
    metadata = runner.metadata_card()
    layers = [
        ("graph", {"input_name": inputs[0]} if len(inputs) == 1 else {}),
        ("onnx metadata", _validated(metadata, f"{path} metadata `{CARD_METADATA_KEY}`") if metadata else {}),
        ("sidecar", _sidecar(path)),
    ]
    if card_overrides is not None:
        layers.append(("scenario", card_overrides.model_dump(exclude_none=True)))
    fields, sources = _merge(layers)
    where_to_fix = CARD_HOMES.format(name=path.name)
    missing: list[MissingField] = []

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
    elif isinstance(runner, OnnxRunner) and fields["output_name"] not in outputs:
        raise AuditInputError(
            f"{path}: card output_name {fields['output_name']!r} is not a model output; outputs: {', '.join(outputs)}"
        )
    batch = None
    if "input_name" not in fields:
        missing.append(
            MissingField(
                "input_name",
                f"input_name: {inputs[0]}  # one of: {', '.join(inputs)}",
                f"{path}: the model has several inputs; set target card `input_name`",
            )
        )
    else:
        facts = runner.input_facts(fields["input_name"])
        batch = facts.batch_size
        source = "graph" if isinstance(runner, OnnxRunner) else "TorchScript convention"
        for key in GRAPH_CHECKED:
            value = getattr(facts, key)
            if value is None:
                continue
            if key not in fields:
                fields[key], sources[key] = value, source
            elif tuple(np.ravel(fields[key])) != tuple(np.ravel(value)) and source == "graph":
                raise AuditInputError(
                    f"{path}: card `{key}` is {fields[key]!r} ({sources[key]}) but the model input "
                    f"{list(facts.shape)} says {value!r}; fix the card"
                )

    if "output_kind" not in fields and "output_name" in fields:
        kind = runner.final_op(fields["output_name"])
        if kind:
            fields["output_kind"], sources["output_kind"] = kind, "graph (final op)"
    if "value_range" not in fields and "mean" not in fields and fields.get("dtype") == "uint8":
        fields["value_range"], sources["value_range"] = (0.0, 255.0), "graph (uint8 input)"
    if "task" not in fields and task:
        fields["task"], sources["task"] = task, "scenario data.task"
    if fields.get("task") == "binary" and "positive_index" not in fields:
        columns = runner.output_columns(fields["output_name"]) if "output_name" in fields else None
        if columns is None:
            columns = _probed_columns(runner, fields, batch, path)
        if columns == 1:
            sources["positive_index"] = "not used: one output column"
        elif columns == 2:
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
        path=path,
        fields=CardFields(**fields),
        sources=sources,
        missing=tuple(missing),
        runner=runner,
        batch_size=batch,
    )
