"""What the attacker owns: the architecture zoo (with its ImageNet weights), surrogate training and the
trained-surrogate record, and the demo's target training.

Imports: `core`, `attacks`, `scenario`, `records`, `target`, `data`.
"""

from __future__ import annotations

from medaudit.attackers.surrogates import (
    SurrogateRecord,
    SurrogateSpec,
    default_device,
    load_surrogate,
    predict_scores,
    train_surrogate,
)
from medaudit.attackers.target_training import build_target
from medaudit.attackers.zoo import ARCHITECTURES, family, require_weights

__all__ = [
    "ARCHITECTURES",
    "build_target",
    "default_device",
    "family",
    "load_surrogate",
    "predict_scores",
    "require_weights",
    "SurrogateRecord",
    "SurrogateSpec",
    "train_surrogate",
]
