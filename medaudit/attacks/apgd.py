"""The white-box tier: APGD-CE (Croce & Hein 2020, the gradient attack of AutoAttack) on the target's own gradients.

It runs ART's `AutoProjectedGradientDescent` with the cross-entropy loss on the target's differentiable module
(`medaudit.whitebox`). ART's loop is built to count misclassified images: it attacks only the images the model
still classifies correctly and returns, for those it could not flip, only their random starting point. An AUC
also moves when an image is pushed towards the boundary without crossing it, so each restart is one ART call on a
chunk that fits one ART batch, and of every image the point with the highest loss is kept: ART's result, or the
best iterate ART recorded (`x_max`). Images the target already misclassifies on the clean input stay as they are.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
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
    seeded,
)

# the white-box attacker breaks an undefended target at a hundredth of the perceptibility bound's epsilon or less:
# its epsilons fall by fours from 1.5x the bound down to 1/256 of it
WHITEBOX_FRACTIONS = (1 / 256, 1 / 64, 1 / 16, 1 / 4, AT_THE_BOUND, 1.5)
MIN_ITERATIONS = 100  # AutoAttack's APGD budget; fewer iterations understate what the weights allow
INITIAL_STEP_PER_EPSILON = 2.0  # APGD's first step is 2 epsilon (Croce & Hein 2020, Algorithm 1); it adapts after
SEARCH_ITERATIONS = 10  # iterations per SSIM measurement in the epsilon search (see `searched`)
CHUNK_IMAGES = 128  # images per ART call: one ART batch, so the best iterates ART records cover the whole chunk


class APGD(Attack):
    """APGD-CE with restarts on the target itself (`victim`: a sequence holding the target's differentiable module)."""

    tier: ClassVar[Tier] = "whitebox"
    auto_fractions: ClassVar[tuple[float, ...]] = WHITEBOX_FRACTIONS

    name: Literal["apgd"]
    iterations: int = Field(default=MIN_ITERATIONS, ge=MIN_ITERATIONS)  # gradient steps per restart
    restarts: int = Field(default=2, ge=1)  # random starts; the point with the highest loss over all of them is kept
    images: int | None = Field(default=None, ge=10)  # stratified seeded subset of the test images (None: all)

    @property
    def id(self) -> str:
        return f"apgd-ce-it{self.iterations}-r{self.restarts}" + (f"-n{self.images}" if self.images else "")

    def searched(self) -> "APGD":
        """The epsilon search runs SEARCH_ITERATIONS steps from one start: APGD's first step is 2 epsilon, so its
        images sit on the ball's faces (where SSIM is decided) after a few steps."""
        return self.model_copy(update={"iterations": SEARCH_ITERATIONS, "restarts": 1})

    def craft(self, victim, x, y, epsilons_pm1, how: Crafting) -> dict[float, Perturbed]:
        (model,) = victim
        classifier = art_classifier(
            model, n_logits=how.n_logits, input_shape=tuple(x.shape[1:]), multilabel=False, device=how.device
        )
        labels = art_labels(y, how.n_logits, False)
        out = {}
        for eps in epsilons_pm1:
            best = x.copy()
            for start in range(0, len(x), CHUNK_IMAGES):
                chunk = slice(start, start + CHUNK_IMAGES)
                best[chunk] = self._chunk(classifier, model, x[chunk], labels[chunk], eps, how)
            out[eps] = projected(x, best, eps)
        return out

    def _chunk(self, classifier, model, x: np.ndarray, labels: np.ndarray, eps: float, how: Crafting) -> np.ndarray:
        from art.attacks.evasion import AutoProjectedGradientDescent

        best, best_loss = x.copy(), _losses(model, x, labels, how.device)
        for restart in range(self.restarts):
            seeded(how.seed + restart)
            attack = AutoProjectedGradientDescent(
                classifier,
                norm=np.inf,
                eps=eps,
                eps_step=INITIAL_STEP_PER_EPSILON * eps,
                max_iter=self.iterations,
                targeted=False,
                nb_random_init=1,
                batch_size=len(x),
                loss_type="cross_entropy",
                verbose=False,
            )
            robust = _correct(model, x, labels, how.device)  # the images ART will attack in this call
            result = attack.generate(x=x, y=labels)
            candidates = [result]
            if robust.any() and getattr(attack, "x_max", None) is not None:
                iterate = result.copy()
                iterate[robust] = attack.x_max  # ART's best iterate of each image it attacked, in their order
                candidates.append(iterate)
            for candidate in candidates:
                loss = _losses(model, candidate, labels, how.device)
                better = loss > best_loss
                best[better], best_loss[better] = candidate[better], loss[better]
        return best


def _logits(model, x: np.ndarray, device: str) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x)).to(device)).float()


def _losses(model, x: np.ndarray, labels: np.ndarray, device: str) -> np.ndarray:
    """Per-image cross-entropy of the true class (one-hot `labels`): what APGD-CE maximises."""
    target = torch.from_numpy(labels.argmax(1)).to(device)
    return F.cross_entropy(_logits(model, x, device), target, reduction="none").cpu().numpy()


def _correct(model, x: np.ndarray, labels: np.ndarray, device: str) -> np.ndarray:
    return _logits(model, x, device).argmax(1).cpu().numpy() == labels.argmax(1)
