"""The deployed target as a differentiable torch function on canonical images, for the white-box tier.

`differentiable_target` loads the target file itself (TorchScript as saved; ONNX through onnx2torch), puts
the card's input contract in front of it in torch (the same mapping as `medaudit.target.black_box.to_target`) and its
output contract behind it (logits for cross-entropy), then checks that the torch model reproduces the
black-box runner's raw outputs on the audit's images. When no gradient reaches the input through a converted ONNX
graph, its Round/Floor/Ceil/Sign/integer-Cast nodes are made straight-through (BPDA, Athalye et al. 2018: forward
as deployed, backward the identity; `medaudit.target.straight_through`) and both checks run again. When it cannot
(a converter refuses an operator, the outputs differ, no gradient reaches the input, a multi-label task) it says
why in one line instead.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import fx, nn

from medaudit.target.card import TargetCard, model_file_kind

# |torch - runner| / max(1, max|runner|) on raw outputs; onnx2torch measured 3e-8 (tiny convnets) to 3e-6 (ResNet-18)
WHITEBOX_TOLERANCE = 1e-4
HALF_PRECISION_TOLERANCE = 1e-2  # the same for float16 graphs: ~10 float16 ulps (eps 9.8e-4), which round per op
CHECK_BATCH = 64  # canonical images per forward in the equivalence and gradient checks
# the smallest normal float32: log(p) stays finite (-87.3) and every normal float32 probability keeps its own log
PROBABILITY_FLOOR = float(torch.finfo(torch.float32).tiny)
REASON_CHARS = 160  # a converter's message is cut to this many characters in a one-line reason
MODEL_DTYPES = {"float16": torch.float16, "float64": torch.float64}  # uint8/float32 graphs are fed float32 (see raw)


@dataclass(frozen=True)
class WhiteboxModel:
    """The target as torch: canonical float32 NCHW images in [-1, 1] -> logits (N, K) for cross-entropy."""

    module: nn.Module  # a `CanonicalTarget`: differentiable, eval mode, weights frozen
    converter: str  # "torchscript (as loaded)" or "onnx2torch <version>"
    max_abs_difference: float  # largest |raw output (torch) - raw output (reference runner)| on the check images
    tolerance: float  # the absolute bound it had to meet (relative tolerance x max(1, max |reference output|))
    check_images: int  # images the equivalence was checked on
    # ONNX op types made straight-through (BPDA), one per node, sorted; () when the gradient needed none
    straight_through: tuple[str, ...] = ()


@dataclass(frozen=True)
class WhiteboxUnavailable:
    """Why the white-box tier cannot attack this target: one line a user can act on."""

    reason: str


class CanonicalTarget(nn.Module):
    """The deployed model behind its card's input and output contracts, all in torch. `raw` gives the model's
    raw output rows (N, n_out) float32 as the black-box runner sees them; `forward` gives logits (N, K) whose
    softmax ranks images like `outputs_to_scores` (binary: K = 2, the positive class in column 1)."""

    def __init__(self, model: nn.Module, card: TargetCard, output_key: str | int):
        super().__init__()
        self.model, self.card, self.output_key = model, card, output_key
        stats = (card.mean, card.std) if card.mean is not None else ((0.0,), (1.0,))
        self.register_buffer("mean", torch.tensor(stats[0], dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(stats[1], dtype=torch.float32).reshape(1, -1, 1, 1))

    def target_input(self, x_pm1: torch.Tensor) -> torch.Tensor:
        """Canonical images -> the model's input contract, as `to_target` maps them; float32 whatever the dtype."""
        card = self.card
        x = (x_pm1 + 1.0) / 2.0
        if x.shape[1] == 1 and card.channels == 3:
            x = x.repeat(1, 3, 1, 1)
        if card.mean is not None:
            x = (x - self.mean) / self.std
        else:
            lo, hi = card.value_range
            x = lo + x * (hi - lo)
        if card.dtype == "uint8":
            # rounding has zero gradient almost everywhere; straight-through passes the identity's gradient back
            # while the forward value is exactly the 8-bit grey level the runner delivers
            x = (x + (torch.round(x) - x).detach()).clamp(0, 255)
        if card.layout == "NHWC":
            x = x.permute(0, 2, 3, 1)
        return x

    def _rows(self, x_pm1: torch.Tensor) -> torch.Tensor:
        # a uint8 graph gets integer-valued float32: its first Cast to float is then the identity, and a uint8
        # tensor would carry no gradient
        x = self.target_input(x_pm1).to(MODEL_DTYPES.get(self.card.dtype, torch.float32))
        out = self.model(x)
        if isinstance(out, dict):
            out = out[self.output_key]
        elif isinstance(out, tuple | list):
            out = out[int(self.output_key)]
        return out.reshape(out.shape[0], -1).float()

    def raw(self, x_pm1: torch.Tensor) -> torch.Tensor:
        """Raw output rows (N, n_out) float32; a fixed-batch graph gets each chunk padded with copies of its
        last image, whose rows are dropped (as `Target.raw_outputs` does)."""
        fixed = self.card.batch_size
        if fixed is None:
            return self._rows(x_pm1)
        rows = []
        for chunk in x_pm1.split(fixed):
            padded = torch.cat([chunk, chunk[-1:].expand(fixed - len(chunk), *chunk.shape[1:])])
            rows.append(self._rows(padded)[: len(chunk)])
        return torch.cat(rows)

    def forward(self, x_pm1: torch.Tensor) -> torch.Tensor:
        return loss_logits(self.raw(x_pm1), self.card)


def _log(p: torch.Tensor) -> torch.Tensor:
    """log of probabilities, floored at PROBABILITY_FLOOR: finite everywhere, exact above the floor."""
    return torch.log(p.clamp_min(PROBABILITY_FLOOR))


def loss_logits(raw: torch.Tensor, card: TargetCard) -> torch.Tensor:
    """Raw output rows -> logits (N, K) for cross-entropy. Binary: (N, 2) with the positive class in column 1,
    softmax column 1 equal to the black-box score (one logit z -> [0, z]; a probability p -> [0, log p -
    log(1 - p)]; two softmax/logit columns -> their log/values, negative first). Multiclass: logits as they are,
    softmax -> log p, sigmoid -> log p - log(1 - p)."""
    kind = card.output_kind
    if card.task == "binary":
        positive = 0 if raw.shape[1] == 1 else (1 if card.positive_index is None else card.positive_index)
        if raw.shape[1] == 2 and kind != "sigmoid":
            pair = raw[:, [1 - positive, positive]]
            return pair if kind == "logits" else _log(pair)
        p = raw[:, positive]
        z = p if kind == "logits" else _log(p) - _log(1.0 - p)
        return torch.stack([torch.zeros_like(z), z], dim=1)
    if kind == "logits":
        return raw
    return _log(raw) if kind == "softmax" else _log(raw) - _log(1.0 - raw)


def input_gradient(module: nn.Module, x_pm1: torch.Tensor) -> torch.Tensor:
    """d/dx of the summed per-image variance of the logits across classes: what cross-entropy can see of them
    (it ignores a shift common to all classes). Same shape as x_pm1; zeros when no gradient reaches x."""
    x = x_pm1.detach().clone().requires_grad_(True)
    spread = module(x).var(dim=1).sum()
    if not spread.requires_grad:  # an integer cast inside the graph cut every path back to x
        return torch.zeros_like(x)
    return torch.autograd.grad(spread, x)[0]


def _one_line(exc: Exception) -> str:
    """An exception as "Type: first line of its message", cut to REASON_CHARS."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:REASON_CHARS] if lines else ''}"


def _onnx_model(path: Path, card: TargetCard, device: str) -> tuple[nn.Module, str | int] | WhiteboxUnavailable:
    """onnx2torch's module for the subgraph from the card's input to its output, and where the output sits in
    what that module returns (index among its producing node's outputs)."""
    import onnx
    import onnx.utils
    import onnx2torch

    proto = onnx.load(str(path))
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    sub = onnx.utils.Extractor(proto).extract_model([card.input_name], [card.output_name])
    producer = next((list(n.output) for n in sub.graph.node if card.output_name in n.output), [card.output_name])
    try:
        module = onnx2torch.convert(sub)
    except Exception as exc:  # onnx2torch raises NotImplementedError/KeyError/RuntimeError alike for what it lacks
        found = re.search(r"operation_type='(\w+)', version=(\d+)", str(exc))
        if found:
            return WhiteboxUnavailable(
                f"{path}: onnx2torch {version('onnx2torch')} cannot convert operator {found[1]} version {found[2]} "
                f"(the model's opset is {opset}); export the model at an opset onnx2torch supports (e.g. 17) "
                "for the white-box tier"
            )
        return WhiteboxUnavailable(f"{path}: onnx2torch {version('onnx2torch')} cannot convert it ({_one_line(exc)})")
    return module.to(device), producer.index(card.output_name)


def straight_through_text(names: tuple[str, ...]) -> str | None:
    """The straight-through op types as the report words them: None for (), else e.g. "straight-through for
    2 Round, 1 Cast" (count per op type, most common first, then by name)."""
    if not names:
        return None
    counts = sorted(Counter(names).items(), key=lambda item: (-item[1], item[0]))
    return "straight-through for " + ", ".join(f"{n} {name}" for name, n in counts)


def _difference(
    module: CanonicalTarget, expected: np.ndarray, batches: tuple[torch.Tensor, ...], bound: float, what: str
) -> float | str:
    """The largest |raw output (torch) - reference| on the check images, or why `what` (the model, in words)
    fails the equivalence: one line, without the file."""
    try:
        with torch.no_grad():
            ours = torch.cat([module.raw(x) for x in batches]).double().cpu().numpy()
    except Exception as exc:  # a converted graph can fail at run time on what it converted (shapes, dtypes)
        return f"the {what} fails on the audit images ({_one_line(exc)})"
    if ours.shape != expected.shape:
        return f"the {what} gives outputs of shape {ours.shape}, the black-box runner {expected.shape}"
    difference = float(np.max(np.abs(ours - expected)))
    if not difference <= bound:  # NaN fails too
        return (
            f"the {what} differs from the black-box runner by {difference:.3g} > tolerance {bound:.3g} on "
            f"{len(expected)} audit images; the white-box tier would attack another function"
        )
    return difference


def _gradient_state(module: CanonicalTarget, x_pm1: torch.Tensor) -> str:
    """The input gradient at `x_pm1` in one word: "usable", "zero" (none reaches the input) or "non-finite"."""
    gradient = input_gradient(module, x_pm1)
    if not bool(torch.isfinite(gradient).all()):
        return "non-finite"
    return "usable" if bool(gradient.abs().sum() > 0) else "zero"


def differentiable_target(
    path: str | Path,
    card: TargetCard,
    *,
    reference: Callable[[np.ndarray], np.ndarray],
    check_images_pm1: np.ndarray,
    device: str = "cpu",
) -> WhiteboxModel | WhiteboxUnavailable:
    """The target file as a `WhiteboxModel` whose raw outputs match `reference` (the black-box runner's raw rows
    (N, n_out) for canonical images) on `check_images_pm1` within the tolerance, and whose logits carry a
    gradient back to the canonical input (through straight-through operators when the converted ONNX graph cuts
    it); otherwise a `WhiteboxUnavailable` saying why."""
    from medaudit.target.straight_through import straight_through  # imports onnx2torch (3 s)

    path = Path(path)
    if len(check_images_pm1) == 0:
        raise ValueError("differentiable_target needs at least one check image")
    if card.task not in ("binary", "multiclass"):
        return WhiteboxUnavailable(
            f"{path}: the white-box tier handles binary and multiclass tasks; this target's task is {card.task}"
        )
    if model_file_kind(path) == "torchscript":
        converter = "torchscript (as loaded)"
        loaded = torch.jit.load(str(path), map_location=device), card.output_name
    else:
        converter, loaded = f"onnx2torch {version('onnx2torch')}", _onnx_model(path, card, device)
        if isinstance(loaded, WhiteboxUnavailable):
            return loaded

    def canonical(model: nn.Module) -> CanonicalTarget:
        return CanonicalTarget(model, card, loaded[1]).to(device).eval().requires_grad_(False)

    module, what, names = canonical(loaded[0]), f"{converter} model", ()
    expected = np.asarray(reference(check_images_pm1), dtype=np.float64)
    x_check = torch.from_numpy(np.ascontiguousarray(check_images_pm1, dtype=np.float32)).to(device)
    batches = x_check.split(CHECK_BATCH)
    relative = HALF_PRECISION_TOLERANCE if card.dtype == "float16" else WHITEBOX_TOLERANCE
    bound = relative * max(1.0, float(np.max(np.abs(expected))))
    difference = _difference(module, expected, batches, bound, what)
    if isinstance(difference, str):
        return WhiteboxUnavailable(f"{path}: {difference}")
    gradient = _gradient_state(module, batches[0])
    cause = "e.g. the graph casts it to integers, and a TorchScript graph cannot be made straight-through"
    if gradient == "zero" and isinstance(loaded[0], fx.GraphModule):
        try:
            rewritten, names = straight_through(loaded[0], lambda graph: canonical(graph).raw(batches[0]))
        except Exception as exc:  # a straight-through cast hands floats to an operator that needs integers (indices)
            return WhiteboxUnavailable(
                f"{path}: the {what} made straight-through fails on the audit images ({_one_line(exc)})"
            )
        cause = "it has no Round, Floor, Ceil, Sign or integer Cast on floats to make straight-through"
        if names:
            module, what = canonical(rewritten), f"{converter} model with {straight_through_text(names)}"
            difference = _difference(module, expected, batches, bound, what)
            if isinstance(difference, str):
                return WhiteboxUnavailable(f"{path}: {difference}")
            gradient, cause = _gradient_state(module, batches[0]), "integer arithmetic past those operators cuts it"
    if gradient != "usable":
        if card.dtype == "float16":
            cause = "float16 arithmetic underflows it"
        elif gradient == "non-finite":
            cause = "e.g. a division by zero inside the graph"
        return WhiteboxUnavailable(
            f"{path}: no usable gradient reaches the input through the {what} ({gradient}: {cause}); use the "
            "transfer or query tiers"
        )
    return WhiteboxModel(
        module=module,
        converter=converter,
        max_abs_difference=difference,
        tolerance=bound,
        check_images=len(expected),
        straight_through=names,
    )
