"""Straight-through versions of the operators of a converted ONNX graph whose gradient is zero almost everywhere.

BPDA (Athalye, Carlini & Wagner 2018, "Obfuscated Gradients Give a False Sense of Security"): an operator g(x) ~ x
that cuts the gradient (Round, Floor, Ceil, Sign, a Cast to an integer dtype) keeps its forward value and passes
the identity's gradient back, so a white-box attack differentiates the deployed function through it. onnx2torch
puts every ONNX node in its `torch.fx.GraphModule` as one `call_module` node, so the rewrite swaps submodules.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from onnx2torch.node_converters.cast import OnnxCast
from onnx2torch.node_converters.functions import OnnxFunction
from onnx2torch.node_converters.roundings import OnnxRound
from torch import fx, nn

ROUNDINGS = {torch.round: "Round", torch.floor: "Floor", torch.ceil: "Ceil"}  # OnnxRound's function -> ONNX op type


class StraightThrough(nn.Module):
    """One operator made straight-through: on a floating-point input x, forward its value y (an integer cast's
    values in x's float dtype, as the graph's cast back to float gives them), backward the identity's gradient.
    A non-floating input (shape arithmetic) gets the operator as it is."""

    def __init__(self, operator: nn.Module, onnx_type: str):
        super().__init__()
        self.operator, self.onnx_type = operator, onnx_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.operator(x)
        if not x.is_floating_point():
            return y
        # y + (x - x) is y exactly for finite x, where x + (y - x) can round (Sign of 1e10 would give 0)
        return y.to(x.dtype) + (x - x.detach())


def onnx_type(operator: nn.Module) -> str | None:
    """The ONNX op type of an onnx2torch submodule whose gradient is zero almost everywhere, else None."""
    if isinstance(operator, OnnxRound):
        return ROUNDINGS.get(operator.round_function)
    if isinstance(operator, OnnxFunction) and operator.function is torch.sign:
        return "Sign"
    if isinstance(operator, OnnxCast):
        dtype = operator.torch_dtype
        return None if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool else "Cast"
    return None


def straight_through(
    graph: fx.GraphModule, run: Callable[[fx.GraphModule], object]
) -> tuple[fx.GraphModule, tuple[str, ...]]:
    """A copy of `graph` whose Round/Floor/Ceil/Sign/integer-Cast nodes that meet a floating-point tensor when
    `run` runs the copy (on the check images) are `StraightThrough`, and those nodes' ONNX op types, sorted.
    A node that meets only integers (shape arithmetic) is left as it is; `graph` itself is not changed."""
    rewritten = copy.deepcopy(graph)
    candidates = {}
    for node in rewritten.graph.nodes:
        found = onnx_type(rewritten.get_submodule(node.target)) if node.op == "call_module" else None
        if found is not None:
            candidates[node.target] = StraightThrough(rewritten.get_submodule(node.target), found)
            rewritten.add_submodule(node.target, candidates[node.target])
    # all candidates are wrapped before the run: a cast after a straight-through cast meets floats only then
    met_float = set()
    hooks = [
        wrapper.register_forward_pre_hook(
            lambda _, args, t=target: met_float.add(t) if args[0].is_floating_point() else None
        )
        for target, wrapper in candidates.items()
    ]
    try:
        with torch.no_grad():
            run(rewritten)
    finally:
        for hook in hooks:
            hook.remove()
    for target, wrapper in candidates.items():
        if target not in met_float:
            rewritten.add_submodule(target, wrapper.operator)
    return rewritten, tuple(sorted(candidates[t].onnx_type for t in met_float))
