"""The model under audit: its card (input contract), the runners (ONNX Runtime, TorchScript), the black box
the audit queries, the differentiable copy the white-box tier attacks, and ONNX export.

Imports: `core`, `attacks`, `scenario`, `records`.
"""

from __future__ import annotations

from medaudit.target.black_box import Target, TargetQueries, class_probabilities, load_target
from medaudit.target.card import CARD_HOMES, TargetCard, read_card
from medaudit.target.differentiable import WhiteboxUnavailable, differentiable_target, straight_through_text
from medaudit.target.export import export_onnx

__all__ = [
    "CARD_HOMES",
    "class_probabilities",
    "differentiable_target",
    "export_onnx",
    "load_target",
    "read_card",
    "straight_through_text",
    "Target",
    "TargetCard",
    "TargetQueries",
    "WhiteboxUnavailable",
]
