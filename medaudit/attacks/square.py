"""The query tier: the Square attack (Andriushchenko et al. 2020) on the target's scores, no gradients.

ART's `SquareAttack` (L-inf, its margin loss) runs on a `BlackBoxClassifierNeuralNetwork` whose predictions are
the target's class probabilities. ART asks again for scores it already had (each step re-scores the current
images); the attacker keeps every answer it got, so only images never sent before reach the target, and a step
costs one query per image still being attacked, as in the Square paper. Like ART's other attacks it attacks only
images the target still classifies correctly and stops on an image once it is misclassified; of the others it
keeps the point with the lowest margin found.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from medaudit.attacks.base import AT_THE_BOUND, Attack, Crafting, Perturbed, Tier, art_labels, projected, seeded

QUERY_FRACTIONS = (1 / 64, 1 / 16, 1 / 8, 1 / 4, AT_THE_BOUND, 1.5)  # multiples of the bound's epsilon under `auto`
QUERIES_BEFORE_STEPS = 2  # the clean image and the initial vertical stripes (ART's init) before the first step
SEARCH_QUERIES = 12  # per image while the epsilon search measures SSIM: Square sets nearly every pixel to +-epsilon
# at its initial stripes already, so its SSIM at an epsilon hardly moves with further steps


class Square(Attack):
    """Square with a per-image query budget (`victim`: images -> the target's class probabilities (N, K))."""

    tier: ClassVar[Tier] = "query"
    auto_fractions: ClassVar[tuple[float, ...]] = QUERY_FRACTIONS

    name: Literal["square"]
    queries_per_image: int = Field(default=1000, gt=QUERIES_BEFORE_STEPS)  # the most images of one kind sent
    p_init: float = Field(default=0.8, gt=0, le=1)  # initial share of pixels a square covers (ART's default)
    images: int | None = Field(default=200, ge=10)  # stratified seeded subset of the test images (None: all)

    @property
    def id(self) -> str:
        return f"square-q{self.queries_per_image}-p{self.p_init:g}" + (f"-n{self.images}" if self.images else "")

    def searched(self) -> "Square":
        return self.model_copy(update={"queries_per_image": min(self.queries_per_image, SEARCH_QUERIES)})

    def craft(self, victim, x, y, epsilons_pm1, how: Crafting) -> dict[float, Perturbed]:
        from art.attacks.evasion import SquareAttack
        from art.estimators.classification import BlackBoxClassifierNeuralNetwork

        classifier = BlackBoxClassifierNeuralNetwork(
            RememberedQueries(victim), tuple(x.shape[1:]), how.n_logits, channels_first=True, clip_values=(-1.0, 1.0)
        )
        labels = art_labels(y, how.n_logits, False)
        out = {}
        for eps in epsilons_pm1:
            seeded(how.seed)
            attack = SquareAttack(
                classifier,
                norm=np.inf,
                eps=eps,
                max_iter=self.queries_per_image - QUERIES_BEFORE_STEPS,
                p_init=self.p_init,
                nb_restarts=1,
                batch_size=how.batch_size,
                verbose=False,
            )
            out[eps] = projected(x, attack.generate(x=x, y=labels), eps)
        return out


class RememberedQueries:
    """The attacker's memory of the target's answers: an image scored once is never sent again."""

    def __init__(self, query: Callable[[np.ndarray], np.ndarray]):
        self.query = query
        self.answers: dict[bytes, np.ndarray] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        keys = [hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest() for image in x]
        missing: dict[bytes, int] = {}  # key -> the first image with it, sent once
        for i, key in enumerate(keys):
            if key not in self.answers and key not in missing:
                missing[key] = i
        if missing:
            self.answers.update(zip(missing, self.query(x[list(missing.values())])))
        return np.stack([self.answers[k] for k in keys])
