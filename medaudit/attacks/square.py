"""The query tier: our own L-inf Square attack (Andriushchenko et al. 2020) on the target's scores, no gradients.

Every image climbs its own margin (`objective.margin` of the scores mapped back to logits: the best other class's
log-probability minus the true class's; multi-label: every label pushed towards its wrong side) for the whole
budget: it starts from vertical stripes of +-epsilon, and each step sets one random square window of its current
point to x +- epsilon (a random sign per channel), keeping the change where the margin rises. The window shrinks
on the paper's schedule (their code's `p_selection`, rescaled to the budget). Each image returns its best point,
the clean image included, so it never ends up less adversarial than it started. Per epsilon an image costs exactly
`queries_per_image` queries: the clean image, the stripes, then one candidate per step; a candidate it sent before
(which scored no higher than its current point) is drawn again, so an image hardly ever spends two queries on one point.

It is our own code, not ART's: ART's `SquareAttack` (like torchattacks' and AutoAttack's) attacks only the images
the target still classifies correctly and stops on an image once it is misclassified, which counts errors. The AUC
ranks every image, so the attack that lowers it most is every image's own extremum in the epsilon ball, images the
target already gets wrong included: on a linear target at 1000 queries per image, ART's loop left the AUC 0.02 to
0.2 above that optimum.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from medaudit.attacks.base import AT_THE_BOUND, Attack, Crafting, Perturbed, Tier, projected
from medaudit.attacks.objective import PROBABILITY_FLOOR

QUERY_FRACTIONS = (1 / 64, 1 / 16, 1 / 8, 1 / 4, AT_THE_BOUND, 1.5)  # multiples of the bound's epsilon under `auto`
QUERIES_BEFORE_STEPS = 2  # the clean image and the initial vertical stripes before the first step
SEARCH_QUERIES = 12  # per image while the epsilon search measures SSIM: Square sets nearly every pixel to +-epsilon
# at its initial stripes already, so its SSIM at an epsilon hardly moves with further steps
SIGMOID_CEILING = 1 - 1e-12  # a per-label probability's cap before logit(p), as `logits_from_probabilities`
REDRAWS = 8  # new squares at most for an image whose candidate it sent before; then that point is resent
HASH_SEED = 0  # the fixed keys that tell sent images apart (not the attack's seed: they draw no perturbation)
SCHEDULE_ITERATIONS = 10_000  # the paper's code rescales the step index to a schedule of this many iterations ...
SCHEDULE_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)  # ... and halves p past each of these


class Square(Attack):
    """Square with a per-image query budget (`victim`: images -> the target's class probabilities (N, K), or
    per-label sigmoid probabilities (N, L) when multi-label)."""

    tier: ClassVar[Tier] = "query"
    auto_fractions: ClassVar[tuple[float, ...]] = QUERY_FRACTIONS

    name: Literal["square"]
    queries_per_image: int = Field(default=1000, gt=QUERIES_BEFORE_STEPS)  # images sent per test image, per epsilon
    p_init: float = Field(default=0.8, gt=0, le=1)  # initial share of pixels a square covers (the paper's default)
    images: int | None = Field(default=200, ge=10)  # stratified seeded subset of the test images (None: all)

    @property
    def id(self) -> str:
        return f"square-margin-q{self.queries_per_image}-p{self.p_init:g}" + (f"-n{self.images}" if self.images else "")

    def searched(self) -> "Square":
        return self.model_copy(update={"queries_per_image": min(self.queries_per_image, SEARCH_QUERIES)})

    def craft(self, victim, x, y, epsilons_pm1, how: Crafting) -> dict[float, Perturbed]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        labels = np.asarray(y)
        margins = partial(_margins, victim, labels=labels, how=how)
        out = {}
        for eps in epsilons_pm1:
            if len(x) == 0:
                out[eps] = projected(x, x, eps)
                continue
            # every epsilon draws from the seed alone: reproducible on its own, whatever the batch size, and with
            # the same stripes and first squares as the other epsilons
            rng = np.random.default_rng(how.seed)
            out[eps] = projected(x, self._attack(margins, x, float(eps), rng), eps)
        return out

    def _attack(self, margins, x: np.ndarray, eps: float, rng: np.random.Generator) -> np.ndarray:
        """Alg. 1 of the paper (L-inf) for every image at once, no stop: each image's point with the highest margin."""
        n, c, h, w = x.shape
        hashes = _Hashes(x.shape[1:])
        clean = margins(x)
        # vertical stripes: one random sign per image, channel and column
        current = np.clip(x + eps * _signs(rng, (n, c, 1, w)), -1.0, 1.0)
        current_margin, current_hash = margins(current), hashes(current)
        sent = [{a, b} for a, b in zip(hashes(x).tolist(), current_hash.tolist())]  # per image: the points it sent
        steps = self.queries_per_image - QUERIES_BEFORE_STEPS
        for step in range(steps):
            # the paper's loop runs n_iters - 1 steps after the stripes, so its schedule spans steps + 1 iterations
            side = _side(_share(self.p_init, step, steps + 1), h, w)
            candidate = current.copy()
            window, values = _square(x, current, eps, side, rng)
            candidate[window] = values
            candidate_hash = current_hash + hashes.change(window, values, current)
            # a point an image sent before scored no higher than its current one: draw its square again instead
            for _ in range(REDRAWS):
                again = np.flatnonzero([key in seen for key, seen in zip(candidate_hash.tolist(), sent)])
                if not len(again):
                    break
                window, values = _square(x[again], current[again], eps, side, rng)
                redrawn = current[again]
                candidate_hash[again] = current_hash[again] + hashes.change(window, values, redrawn)
                redrawn[window] = values
                candidate[again] = redrawn
            for seen, key in zip(sent, candidate_hash.tolist()):
                seen.add(key)
            candidate_margin = margins(candidate)
            better = candidate_margin > current_margin
            current[better], current_margin[better], current_hash[better] = (
                candidate[better],
                candidate_margin[better],
                candidate_hash[better],
            )
        return np.where((current_margin > clean)[:, None, None, None], current, x)


def _square(x: np.ndarray, current: np.ndarray, eps: float, side: int, rng: np.random.Generator):
    """Each image's random square window (fancy indices, (N, C, side, side) once broadcast) and its new values,
    x + sign x epsilon with a random sign per channel. A window already at those signs would resend the current
    point, so its signs are flipped (the paper redraws them until the window changes; with one channel the flip is
    the only other draw)."""
    n, c, h, w = x.shape
    top, left = rng.integers(0, h - side + 1, n), rng.integers(0, w - side + 1, n)
    signs = _signs(rng, (n, c, 1, 1))
    window = (
        np.arange(n)[:, None, None, None],
        np.arange(c)[None, :, None, None],
        (top[:, None] + np.arange(side))[:, None, :, None],
        (left[:, None] + np.arange(side))[:, None, None, :],
    )
    clean = x[window]
    values = np.clip(clean + eps * signs, -1.0, 1.0)
    same = np.all(values == current[window], axis=(1, 2, 3))
    values[same] = np.clip(clean[same] - eps * signs[same], -1.0, 1.0)
    return window, values


class _Hashes:
    """A 64-bit hash per image, equal for equal images: its pixels' float32 bits times fixed random odd keys, summed
    modulo 2**64. Exact integer arithmetic, so a window's change updates it to the very hash of the new image.
    Distinct images collide with negligible probability, and a collision only makes an image draw again."""

    def __init__(self, shape: tuple[int, ...]):
        keys = np.random.default_rng(HASH_SEED).integers(0, 2**63, shape, dtype=np.uint64)
        self.keys = keys * np.uint64(2) + np.uint64(1)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return (_bits(images) * self.keys).reshape(len(images), -1).sum(1)

    def change(self, window: tuple, values: np.ndarray, images: np.ndarray) -> np.ndarray:
        """How each image's hash moves when its window is set to `values`."""
        keys = self.keys[window[1:]]
        return ((_bits(values) - _bits(images[window])) * keys).reshape(len(images), -1).sum(1)


def _bits(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images, dtype=np.float32).view(np.uint32).astype(np.uint64)


def _margins(victim, images: np.ndarray, labels: np.ndarray, how: Crafting) -> np.ndarray:
    """Each image's margin (N,) from the target's scores, sent in batches of `how.batch_size`: one query per image."""
    scores = np.concatenate(
        [np.asarray(victim(images[i : i + how.batch_size])) for i in range(0, len(images), how.batch_size)]
    )
    return margin_of_scores(scores, labels, how.multilabel)


def margin_of_scores(scores: np.ndarray, labels: np.ndarray, multilabel: bool) -> np.ndarray:
    """`objective.margin` of `objective.logits_from_probabilities`, in numpy: torch's reductions on a few hundred
    scores cost milliseconds a call on a busy machine (thread hand-offs), a thousand steps per epsilon."""
    p = np.clip(scores.astype(np.float64), PROBABILITY_FLOOR, 1.0)
    if multilabel:
        logits = np.log(p) - np.log1p(-np.minimum(p, SIGMOID_CEILING))
        return -((2 * labels.astype(np.float64) - 1) * logits).sum(1)
    logits = np.log(p)
    rows, true = np.arange(len(p)), labels.astype(np.int64)
    others = logits.copy()
    others[rows, true] = -np.inf
    return others.max(1) - logits[rows, true]


def _signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)


def _share(p_init: float, step: int, iterations: int) -> float:
    """The share of pixels a square covers at this step: the paper's `p_selection`, halving p on its schedule."""
    at = int(step / iterations * SCHEDULE_ITERATIONS)
    return p_init / 2 ** sum(at > threshold for threshold in SCHEDULE_HALVINGS)


def _side(share: float, h: int, w: int) -> int:
    """A square's side in pixels: sqrt(share x pixels), at least 1 and short of the image's side where it can be."""
    return int(min(max(round(np.sqrt(share * h * w)), 1), max(min(h, w) - 1, 1)))
