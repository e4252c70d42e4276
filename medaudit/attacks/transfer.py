"""The transfer tier: attacks crafted on the attacker's own surrogates with ART, then handed to the target.

FGSM's gradient is ART's `loss_gradient`, taken once for all epsilons. PGD and MI-FGSM take ART's steps
(`ProjectedGradientDescentPyTorch`: sign step, projection, clipping, MI-FGSM's L1-normalised momentum) in our own
loop, which tests/test_attacks.py holds equal to ART's bit for bit: ART crafts one epsilon per call, and its
per-call overhead made PGD-10 at 64 px slower than torchattacks on EfficientNet-Lite0. Our loop attacks every
epsilon of a grid in one batched pass (`rows`) and differentiates each distinct point once: rows of one image at
different epsilons coincide until the ball stops them (`shared_gradient`). Both run on `surrogate.surrogate_model`
(one surrogate or the logit ensemble of several, with the optional input-diversity and translation-invariance boosters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import nn
from torch.nn import functional as F

from medaudit.attacks.base import (
    AT_THE_BOUND,
    Attack,
    Crafting,
    Perturbed,
    Tier,
    art_classifier,
    art_labels,
    projected,
)
from medaudit.attacks.rows import Grid, clip_to_ball, passes, start_noise
from medaudit.attacks.surrogate import InputDiversity, surrogate_model

# multiples of the perceptibility bound's epsilon measured under `epsilons_pm1: auto`: halving down to a sixteenth
# of it, where transfer from an ImageNet surrogate already breaks undefended targets, and past it to 1.5x
TRANSFER_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, AT_THE_BOUND, 1.5)


class TransferAttack(Attack):
    """An attack crafted on surrogates (`victim`: a sequence of torch modules, logits out; several are ensembled)."""

    tier: ClassVar[Tier] = "transfer"
    auto_fractions: ClassVar[tuple[float, ...]] = TRANSFER_FRACTIONS

    def _classifier(self, models: Sequence[nn.Module], x: np.ndarray, how: Crafting, **boosters):
        return art_classifier(
            surrogate_model(models, x, how.device, **boosters),
            n_logits=how.n_logits,
            input_shape=tuple(x.shape[1:]),
            multilabel=how.multilabel,
            device=how.device,
        )


class FGSM(TransferAttack):
    """Fast Gradient Sign Method (Goodfellow et al. 2015): one step of size epsilon along the loss gradient's sign."""

    name: Literal["fgsm"]

    @property
    def id(self) -> str:
        return "fgsm"

    def craft(self, victim, x, y, epsilons_pm1, how: Crafting) -> dict[float, Perturbed]:
        sign = np.sign(
            loss_gradient(
                self._classifier(victim, x, how), x, art_labels(y, how.n_logits, how.multilabel), how.batch_size
            )
        )
        return {eps: projected(x, x + eps * sign, eps) for eps in epsilons_pm1}


class TransferTricks(TransferAttack):
    """Input diversity and translation invariance, the transfer boosters of the iterative attacks.

    Both are off by default. `diversity_prob` is DI's p (Xie et al. 2019): each step, with probability p,
    the surrogate sees the image shrunk to a random side and padded back at a random place. `ti_kernel` is
    TI's Gaussian kernel side in pixels (Dong et al. 2019), odd; the paper's 15 at 299 px is about 3 at
    64 px; 0 turns TI off.
    """

    step_pm1: float | None = Field(default=0.01, gt=0)  # step in [-1, 1] units; None: epsilon / iterations
    diversity_prob: float = Field(default=0.0, ge=0, le=1)  # probability of the DI transform per step
    ti_kernel: int = Field(default=0, ge=0)  # Gaussian kernel side in pixels, odd; 0 = off

    @field_validator("ti_kernel")
    @classmethod
    def _odd_kernel(cls, v: int) -> int:
        if v and v % 2 == 0:
            raise ValueError(f"ti_kernel {v} must be odd (the kernel is centred on a pixel); use {v + 1} or 0")
        return v

    def _boosters_id(self) -> str:
        return (f"-di{self.diversity_prob:g}" if self.diversity_prob else "") + (
            f"-ti{self.ti_kernel}" if self.ti_kernel else ""
        )

    @property
    def reach_pm1(self) -> float | None:
        """The iterative attacks move at most `step_pm1` per iteration (no random start counted); a step that
        scales with epsilon reaches every epsilon."""
        return None if self.step_pm1 is None else self.iterations * self.step_pm1

    def _step_id(self) -> str:
        """`-step0.01`, or nothing when the step is epsilon / iterations."""
        return f"-step{self.step_pm1:g}" if self.step_pm1 is not None else ""

    def craft(self, victim, x, y, epsilons_pm1, how: Crafting) -> dict[float, Perturbed]:
        """Every epsilon in one batched pass (`rows.Grid`), ART's steps on each row (`iterate`)."""
        model = surrogate_model(victim, x, how.device, ti_kernel=self.ti_kernel, diversity_prob=self.diversity_prob)
        loss = multilabel_loss if how.multilabel else class_loss
        grid = Grid.of(x, y, epsilons_pm1, step_of=self.step)
        start = grid.x[grid.image]
        if self.starts_at_random():
            start = clip_to_ball(start + grid.eps * start_noise(grid.x, how.seed, 0)[grid.image], start, grid.eps)
        rows = iterate(model, loss, grid, start, self.iterations, self.momentum_decay(), how)
        return grid.images(rows)

    def starts_at_random(self) -> bool:
        """ART's `num_random_init=1`: start uniformly in the epsilon ball (drawn per image, `rows.start_noise`)."""
        return False

    def momentum_decay(self) -> float | None:
        """MI-FGSM's decay mu; None: plain PGD steps."""
        return None

    def step(self, epsilon_pm1: float) -> float:
        """The step at one epsilon: `step_pm1`, or epsilon / iterations (Dong et al. 2018, alpha = epsilon / T)."""
        return self.step_pm1 if self.step_pm1 is not None else epsilon_pm1 / self.iterations


class PGD(TransferTricks):
    """Projected Gradient Descent (Madry et al. 2018); the paper uses step 0.01, 20 iterations."""

    name: Literal["pgd"]
    iterations: int = Field(default=20, ge=1)
    random_start: bool = False

    @property
    def id(self) -> str:
        rs = "-rs" if self.random_start else ""
        return f"pgd{self._step_id()}-it{self.iterations}{rs}{self._boosters_id()}"

    def starts_at_random(self) -> bool:
        return self.random_start


class MIFGSM(TransferTricks):
    """Momentum Iterative FGSM (Dong et al. 2018), a stronger transfer attack."""

    name: Literal["mifgsm"]
    step_pm1: float | None = Field(default=None, gt=0)  # None: epsilon / iterations, as Dong et al. (2018) set it
    iterations: int = Field(default=10, ge=1)
    decay: float = Field(default=1.0, ge=0)  # momentum decay factor mu

    @property
    def id(self) -> str:
        return f"mifgsm{self._step_id()}-it{self.iterations}-mu{self.decay:g}{self._boosters_id()}"

    def momentum_decay(self) -> float | None:
        return self.decay


def class_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each row, summed: each row's gradient is its own (a mean would scale it by the batch)."""
    return F.cross_entropy(logits, y.long(), reduction="sum")


def multilabel_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over 0/1 label vectors, summed (as `base.MultiLabelBCE`, per row)."""
    return F.binary_cross_entropy_with_logits(logits, y.float(), reduction="sum")


def iterate(model, loss_fn, grid: Grid, start: torch.Tensor, iterations: int, decay: float | None, how: Crafting):
    """ART's L-inf PGD (decay None) or MI-FGSM on every row of `grid`, each with its own epsilon and step, from
    `start` (R, C, H, W): x <- clip(proj_eps(clip(x + step * sign(g)))), where g is the loss gradient or, for
    MI-FGSM, the momentum g <- decay * g + grad / ||grad||_1 (ART 1.20 `ProjectedGradientDescentPyTorch`, equal to
    it bit for bit in tests/test_attacks.py). Input diversity draws its transform from (seed, iteration), the same
    for every row. Each step differentiates only distinct points (`shared_gradient`); the images come back on the
    CPU."""
    diversity = [m for m in model.modules() if isinstance(m, InputDiversity)]
    device, r = how.device, len(start)
    point, x, y = start.to(device), grid.x.to(device), grid.y.to(device)
    image, eps, step = grid.image.to(device), grid.eps.to(device), grid.step.to(device)
    labels, previous = y[image], grid.previous.to(device)
    momentum = torch.zeros_like(point) if decay is not None else None
    for k in range(iterations):
        for d in diversity:
            d.reseed(how.seed, k)
        gradients, which = shared_gradient(model, loss_fn, point, labels, previous, how.batch_size)
        for rows in torch.arange(r, device=device).split(how.batch_size):  # the update, a pass's rows at a time
            gradient = torch.nan_to_num(gradients[which[rows]], nan=0.0)
            if momentum is not None:
                norm1 = torch.linalg.norm(gradient.flatten(1), ord=1, dim=1).view((-1,) + (1,) * (x.dim() - 1))
                momentum[rows] = momentum[rows] * decay + gradient * norm1.where(norm1 == 0, 1 / norm1)
                gradient = momentum[rows]
            xr = x[image[rows]]
            delta = (point[rows] + step[rows] * gradient.sign()).clamp(-1.0, 1.0) - xr
            # ART's projection, in its arithmetic
            point[rows] = xr + delta.sign() * torch.minimum(delta.abs(), eps[rows])
    return point.cpu()


def shared_gradient(model, loss_fn, point, y, previous, rows_per_pass: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss gradient at every row's point, computed once per distinct point: a row whose point equals, to the
    last bit, that of the same image's row at the epsilon before it (`previous`) shares that row's gradient. With
    no random start every epsilon's row starts at the clean image, and a fixed step keeps the rows of the larger
    epsilons together until the ball stops one (PGD-10 with step 0.01 over the 6-epsilon curve 0.005-0.08: 44
    points per image instead of 60 in exact arithmetic; 47 on PneumoniaMNIST at 64 px, where float rounding at the
    ball's edge parts rows whose points are equal in exact arithmetic). The distinct points are differentiated in
    padded passes of `rows_per_pass`, so each row's gradient is what a pass of that size gives it whatever the
    other rows are (`rows`). Returns the distinct points' gradients and, per row, the index of its gradient among
    them."""
    n = len(point)
    own = torch.arange(n, device=point.device)
    later = (previous >= 0).nonzero().squeeze(1)
    same = torch.zeros(n, dtype=torch.bool, device=point.device)
    same[later] = (point[later] == point[previous[later]]).flatten(1).all(1)
    representative = torch.where(same, previous, own)
    while not torch.equal(representative, representative[representative]):  # a chain of equal rows: its first
        representative = representative[representative]
    distinct = (representative == own).nonzero().squeeze(1)
    gradients = torch.empty((len(distinct),) + tuple(point.shape[1:]), dtype=point.dtype, device=point.device)
    done = 0
    for rows, padded in passes(distinct, rows_per_pass):
        with torch.enable_grad():
            p = point[padded].detach().requires_grad_(True)
            (g,) = torch.autograd.grad(loss_fn(model(p), y[padded]), p)
        gradients[done : done + len(rows)] = g[: len(rows)]
        done += len(rows)
    position = torch.empty(n, dtype=torch.long, device=point.device)
    position[distinct] = torch.arange(len(distinct), device=point.device)
    return gradients, position[representative]


def loss_gradient(classifier, x: np.ndarray, labels: np.ndarray, batch_size: int) -> np.ndarray:
    """ART's loss gradient w.r.t. the input, (N, C, H, W), batched as torch tensors (no numpy per step)."""
    device = classifier.device
    grads = [
        classifier.loss_gradient(
            torch.from_numpy(x[i : i + batch_size]).to(device), torch.from_numpy(labels[i : i + batch_size]).to(device)
        )
        .cpu()
        .numpy()
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(grads) if grads else np.zeros_like(x)
