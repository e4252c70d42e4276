"""What every attack shares: its tier, the settings it is crafted with, and the re-clip to the epsilon ball.

All images live in the canonical space: float32 NCHW in [-1, 1]; epsilon is an L-inf bound in those units
(Bortsova et al. 2021, section 3.2). Attacks are untargeted and use the true labels.

An attack belongs to one tier, by what the attacker holds (NIST AI 100-2 knowledge and access):
- `transfer`: surrogates the attacker trained; the target is never queried while crafting;
- `query`: the target's scores, queried image by image (no gradients);
- `whitebox`: the target's weights, attacked with its own gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn
from torch.nn import functional as F

Tier = Literal["transfer", "query", "whitebox"]
TIERS: tuple[Tier, ...] = get_args(Tier)
# the `auto` grid's point at the perceptibility bound sits just inside it: the search estimates the bound's epsilon
# on a few images, and mean SSIM over all test images scatters around it (demo FGSM: 0.801 on the search's 32
# images, 0.797 on all 200), so a point at exactly 1.0x would be inadmissible about half the time
AT_THE_BOUND = 0.95


@dataclass(frozen=True)
class Crafting:
    """How one attack is run, beside its own parameters: the label space, batching, seed and device."""

    n_logits: int  # the victim's output columns (2 for a binary task)
    multilabel: bool  # 0/1 label vectors and a sigmoid per class instead of one softmax
    batch_size: int
    seed: int  # every epsilon is crafted from this seed, so one epsilon's images do not depend on the others
    device: str  # cpu | cuda


@dataclass(frozen=True)
class Perturbed:
    """Adversarial images at one epsilon and their bookkeeping."""

    x_adv: np.ndarray  # (N, C, H, W) float32 in [-1, 1]
    max_abs_delta: float  # largest |x_adv - x| reached, in [-1, 1] units (<= epsilon)


class Attack(BaseModel):
    """One attack as the scenario names it: its parameters (units in their names) and how it is crafted.

    Subclasses set `tier` and implement `craft`; `id` is built from the parameters and is the cache key, the
    JSON key and the report's label. `auto_fractions` are the multiples of the perceptibility bound's epsilon
    at which `epsilons_pm1: auto` measures this attack."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tier: ClassVar[Tier]
    auto_fractions: ClassVar[tuple[float, ...]]

    @property
    def id(self) -> str:
        raise NotImplementedError

    def craft(self, victim, x: np.ndarray, y: np.ndarray, epsilons_pm1, how: Crafting) -> dict[float, Perturbed]:
        """Adversarial images of `x` (labels `y`: class indices, or 0/1 vectors when multilabel) at each epsilon.
        `victim` is what the tier gives the attacker: its surrogates (transfer), the target's differentiable
        module (whitebox) or a function returning the target's class probabilities (query)."""
        raise NotImplementedError

    def searched(self) -> "Attack":
        """The attack as the epsilon search runs it to measure SSIM (only a cheaper variant where it exists)."""
        return self

    @property
    def reach_pm1(self) -> float | None:
        """The largest perturbation the attack can make whatever its epsilon (steps x step size), None: unlimited."""
        return None


def projected(x: np.ndarray, x_adv: np.ndarray, epsilon_pm1: float) -> Perturbed:
    """Re-clip whatever the attack returned to the epsilon ball and to [-1, 1]; record the max |delta|."""
    x_adv = np.clip(np.clip(x_adv, x - epsilon_pm1, x + epsilon_pm1), -1.0, 1.0).astype(np.float32)
    return Perturbed(x_adv=x_adv, max_abs_delta=float(np.max(np.abs(x_adv - x))) if len(x) else 0.0)


def art_labels(y: np.ndarray, n_logits: int, multilabel: bool) -> np.ndarray:
    """True labels in the form ART's losses take: one-hot for softmax heads, 0/1 floats for multi-label."""
    if multilabel:
        return y.astype(np.float32)
    return np.eye(n_logits, dtype=np.float32)[y.astype(np.int64)]


class MultiLabelBCE(nn.Module):
    """Binary cross-entropy over 0/1 label vectors. Not a `BCEWithLogitsLoss` on purpose: ART reduces
    the labels of that loss to class indices, which is right for one sigmoid output, wrong for several."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, labels.float())


def art_classifier(
    model: nn.Module, *, n_logits: int, input_shape: tuple[int, int, int], multilabel: bool, device: str
):
    """Wrap a differentiable model (logits out) for ART; its parameters are frozen so ART skips weight gradients."""
    from art.estimators.classification import PyTorchClassifier

    model = model.eval().requires_grad_(False)
    loss = MultiLabelBCE() if multilabel else nn.CrossEntropyLoss()
    return PyTorchClassifier(
        model=model,
        loss=loss,
        input_shape=input_shape,
        nb_classes=n_logits,
        clip_values=(-1.0, 1.0),
        preprocessing=None,  # ART's default adds an identity (x - 0) / 1
        device_type="gpu" if device == "cuda" else "cpu",
    )
