"""The white-box tier: APGD (Croce & Hein 2020, Algorithm 1) on the target's own gradients, aimed at its AUC.

AUC ranks images and each image is perturbed on its own, so the AUC-optimal attack in the epsilon ball is every
image's own extremum (`medaudit.attacks.objective`): every image is attacked for the whole budget, images the
target already gets wrong included, and keeps the point highest on the margin loss over every iterate, restart and
ensemble loss (the clean image among them). This is our own torch code, not ART's: ART's APGD (like
torchattacks' and AutoAttack's) attacks only the images still classified correctly and stops on a flipped one,
which left the AUC up to 0.13 above the optimum on a linear model whose optimum is known.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from medaudit.attacks.base import AT_THE_BOUND, Attack, Crafting, Perturbed, Tier
from medaudit.attacks.objective import JUDGING_LOSS, LOSSES
from medaudit.attacks.rows import clip_to_ball, over_rows, start_noise
from medaudit.attacks.surrogate import FOLD_CHECK_IMAGES, ChannelsLast, folded_if_exact, out_of_place

# the white-box attacker breaks an undefended target at a hundredth of the perceptibility bound's epsilon or less:
# its epsilons fall by fours from 1.5x the bound down to 1/256 of it
WHITEBOX_FRACTIONS = (1 / 256, 1 / 64, 1 / 16, 1 / 4, AT_THE_BOUND, 1.5)
MIN_ITERATIONS = 100  # AutoAttack's APGD budget; fewer iterations understate what the weights allow
SEARCH_ITERATIONS = 10  # iterations per SSIM measurement in the epsilon search (see `searched`)
# Croce & Hein 2020, Algorithm 1 and section 3.2: the first step is 2 epsilon; momentum 0.75 after the first step;
# checkpoints at w_0 = 0, w_1 = 0.22 N_iter, w_{j+1} = w_j + max(w_j - w_{j-1} - 0.03 N_iter, 0.06 N_iter), where an
# image whose loss rose in under RHO of the steps since the last checkpoint (or that neither halved its step nor
# improved its best loss) halves its step and restarts from its best point
INITIAL_STEP_PER_EPSILON = 2.0
MOMENTUM = 0.75
FIRST_CHECKPOINT, CHECKPOINT_DECREASE, MIN_CHECKPOINT_GAP = 0.22, 0.03, 0.06
RHO = 0.75


class APGD(Attack):
    """APGD with restarts and an ensemble of losses on the target itself (`victim`: a sequence holding the target's
    differentiable module, logits out)."""

    tier: ClassVar[Tier] = "whitebox"
    auto_fractions: ClassVar[tuple[float, ...]] = WHITEBOX_FRACTIONS

    name: Literal["apgd"]
    iterations: int = Field(default=MIN_ITERATIONS, ge=MIN_ITERATIONS)  # gradient steps per restart and loss
    # random starts per loss; one start of each of two losses costs what two starts of one did, and the convergence
    # check (twice the iterations and restarts) says whether more would have mattered
    restarts: int = Field(default=1, ge=1)
    losses: tuple[str, ...] = Field(default=("margin", "ce"), min_length=1)  # names in `objective.LOSSES`
    images: int | None = Field(default=None, ge=10)  # stratified seeded subset of the test images (None: all)

    @field_validator("losses")
    @classmethod
    def _known(cls, losses: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in losses if name not in LOSSES]
        if unknown:
            raise ValueError(f"unknown loss {unknown[0]!r}; the losses are {', '.join(LOSSES)}")
        if len(set(losses)) != len(losses):
            raise ValueError("a loss is named twice")
        return losses

    @property
    def id(self) -> str:
        losses = "+".join(self.losses)
        return f"apgd-{losses}-it{self.iterations}-r{self.restarts}" + (f"-n{self.images}" if self.images else "")

    def searched(self) -> "APGD":
        """The epsilon search runs SEARCH_ITERATIONS steps of the margin loss from one start: APGD's first step is
        2 epsilon, so its images sit on the ball's faces (where SSIM is decided) after a few steps. The field
        validator's minimum is for scenarios; the search's copy is built past it."""
        return self.model_construct(
            name="apgd", iterations=SEARCH_ITERATIONS, restarts=1, losses=(JUDGING_LOSS,), images=self.images
        )

    def stronger(self, factor: int) -> "APGD":
        """The same attack with `factor` times the iterations and restarts (the convergence check's)."""
        return self.model_copy(update={"iterations": self.iterations * factor, "restarts": self.restarts * factor})

    def craft(self, victim, x, y, epsilons_pm1, how: Crafting) -> dict[float, Perturbed]:
        """Every epsilon in one batched pass (`rows`); each row's starts drawn per (seed, restart) and image."""
        (model,) = victim
        # the same function, cheaper to differentiate (`surrogate`); a copy, so the caller's module is untouched
        xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        example = xt[:FOLD_CHECK_IMAGES].to(how.device)
        model = ChannelsLast(out_of_place(folded_if_exact(model, example))).eval().requires_grad_(False)
        noise = [start_noise(xt, how.seed, r) for r in range(self.restarts)]

        def attack(xb, yb, eps, step, index):
            starts = [clip_to_ball(xb + eps * n[index], xb, eps) for n in noise]
            return self.best_of(model, xb, yb, eps, starts, how)

        return over_rows(x, y, epsilons_pm1, how.batch_size, attack)

    def best_of(self, model, x, y, eps: torch.Tensor, starts: Sequence[torch.Tensor], how: Crafting) -> torch.Tensor:
        """Of every row (epsilon per row, (R, 1, 1, 1)), the candidate highest on the judging loss: the clean image,
        then each loss's best iterate from each start."""
        device = how.device
        x, y, eps = x.to(device), y.to(device), eps.to(device)
        judge = LOSSES[JUDGING_LOSS]
        best = x.clone()
        with torch.no_grad():
            best_loss = judge(model(best).float(), y, how.multilabel)
        for start in starts:
            for name in self.losses:
                candidate = apgd(model, x, y, eps, LOSSES[name], self.iterations, start.to(device), how.multilabel)
                with torch.no_grad():
                    loss = judge(model(candidate).float(), y, how.multilabel)
                better = loss > best_loss
                best[better], best_loss[better] = candidate[better], loss[better]
        return best.cpu()


def checkpoints(iterations: int) -> set[int]:
    """The iterations after which APGD checks each image's progress (Croce & Hein 2020, section 3.2)."""
    points, previous, current = set(), 0, int(np.ceil(FIRST_CHECKPOINT * iterations))
    gap_floor, decrease = int(np.ceil(MIN_CHECKPOINT_GAP * iterations)), int(np.ceil(CHECKPOINT_DECREASE * iterations))
    while current < iterations:
        points.add(current)
        previous, current = current, current + max(current - previous - decrease, gap_floor)
    return points


def apgd(model, x, y, eps, loss_fn, iterations: int, start: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """One APGD run (L-inf) from `start` maximising the per-image `loss_fn`; each image's best iterate. `eps`: a
    float, or one epsilon per row (R, 1, 1, 1).

    Per image: step size, momentum and the checkpoint rule; nothing stops early and nothing skips an image."""
    n = len(x)
    shape = (n,) + (1,) * (x.dim() - 1)
    eps = torch.as_tensor(eps, dtype=torch.float32, device=x.device).expand(shape)
    lower, upper = (x - eps).clamp(min=-1.0), (x + eps).clamp(max=1.0)

    def loss_and_gradient(point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():  # a caller's no_grad must not silently zero the attack
            point = point.clone().requires_grad_(True)
            loss = loss_fn(model(point).float(), y, multilabel)
            (gradient,) = torch.autograd.grad(loss.sum(), point)
        return loss.detach(), gradient.detach()

    step = (INITIAL_STEP_PER_EPSILON * eps).clone()
    current = torch.minimum(torch.maximum(start, lower), upper)
    loss, gradient = loss_and_gradient(current)
    best, best_loss, best_gradient = current.clone(), loss.clone(), gradient.clone()
    previous = current.clone()
    marks = checkpoints(iterations)
    increases = torch.zeros(n, device=x.device)  # steps since the last checkpoint on which the loss rose
    last_loss = loss.clone()
    loss_at_checkpoint, since = best_loss.clone(), 0
    reduced_at_checkpoint = torch.ones(n, dtype=torch.bool, device=x.device)
    for k in range(iterations):
        z = torch.minimum(torch.maximum(current + step * gradient.sign(), lower), upper)
        momentum = MOMENTUM if k > 0 else 1.0
        moved = current + momentum * (z - current) + (1 - momentum) * (current - previous)
        previous, current = current, torch.minimum(torch.maximum(moved, lower), upper)
        loss, gradient = loss_and_gradient(current)
        increases += (loss > last_loss).float()
        last_loss = loss
        better = loss > best_loss
        best[better], best_loss[better], best_gradient[better] = current[better], loss[better], gradient[better]
        since += 1
        if k + 1 in marks:
            oscillating = increases <= RHO * since
            stalled = ~reduced_at_checkpoint & (loss_at_checkpoint >= best_loss)
            halve = oscillating | stalled
            step[halve] /= 2
            current[halve], gradient[halve] = best[halve], best_gradient[halve]
            previous[halve] = best[halve]
            reduced_at_checkpoint, loss_at_checkpoint = halve, best_loss.clone()
            increases.zero_()
            since = 0
    return best
