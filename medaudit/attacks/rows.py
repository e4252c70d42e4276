"""Every epsilon of a grid in one pass: an L-inf attack's epsilon only scales its steps and its projection, so the
images of all epsilons are attacked together, repeated along the batch with an epsilon per row.

Rows are (epsilon, image) pairs, epsilon-major. They are attacked `rows_per_pass` at a time, and the last pass is
padded to full size by repeating its first row, so that every forward and backward pass has the same batch size:
on CPU, torch's convolutions give each row bit-identical results whatever the other rows of the batch are, but not
always across batch sizes (MobileNetV2 and ResNet-18 differ in the 17th digit at 17 rows). An attack's row
function computes each row from that row alone (losses summed, not averaged, over the batch), so crafting a grid
in one pass gives, bit for bit, what crafting each epsilon alone gives (tests/test_attacks.py). The pass size is
the memory cap: `Crafting.batch_size` rows are in flight at once, whatever the number of epsilons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from medaudit.attacks.base import Perturbed, projected

# attacks one chunk of rows: (images, labels, epsilon per row (R, 1, 1, 1), step per row (idem), test-image index
# per row) -> images
RowAttack = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def over_rows(
    x: np.ndarray,
    y: np.ndarray,
    epsilons_pm1: Sequence[float],
    rows_per_pass: int,
    attack: RowAttack,
    step_of: Callable[[float], float] = lambda eps: eps,
) -> dict[float, Perturbed]:
    """`attack` on every (epsilon, image) row of `x` at `epsilons_pm1`, `rows_per_pass` rows at a time; the images
    of each epsilon, re-clipped to its ball. `step_of`: each epsilon's step, computed in float64 from the epsilon
    as the scenario states it (as ART computes it) and only then made float32."""
    if rows_per_pass < 1:
        raise ValueError(f"rows_per_pass must be >= 1, got {rows_per_pass}")
    epsilons = list(dict.fromkeys(float(e) for e in epsilons_pm1))
    n = len(x)
    if n == 0 or not epsilons:
        return {eps: projected(x, x.copy(), eps) for eps in epsilons}
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    yt = torch.from_numpy(np.asarray(y))
    image = torch.arange(n).repeat(len(epsilons))  # row -> test image, epsilon-major
    eps_of_row = torch.tensor(epsilons, dtype=torch.float32).repeat_interleave(n)
    step_of_row = torch.tensor([step_of(e) for e in epsilons], dtype=torch.float32).repeat_interleave(n)
    out = torch.empty((len(image),) + tuple(xt.shape[1:]), dtype=torch.float32)
    shape = (-1,) + (1,) * (xt.dim() - 1)  # one value per row, broadcast over the image
    for start in range(0, len(image), rows_per_pass):
        rows = torch.arange(start, min(start + rows_per_pass, len(image)))
        padded = torch.cat([rows, rows[:1].repeat(rows_per_pass - len(rows))])
        index = image[padded]
        eps, step = eps_of_row[padded].view(shape), step_of_row[padded].view(shape)
        out[rows] = attack(xt[index], yt[index], eps, step, index)[: len(rows)].cpu()
    return {eps: projected(x, out[i * n : (i + 1) * n].numpy(), eps) for i, eps in enumerate(epsilons)}


def start_noise(x: torch.Tensor, seed: int, restart: int) -> torch.Tensor:
    """Uniform noise in [-1, 1] of `x`'s shape for random start `restart`, drawn for all of `x` at once from
    (seed, restart), so an image's start does not depend on how the rows are chunked; a row's start is
    `clip_to_ball(x + eps * noise, x, eps)`."""
    return torch.rand(x.shape, generator=stream(seed, restart), dtype=torch.float32) * 2 - 1


def stream(seed: int, index: int) -> torch.Generator:
    """The generator of draw `index` (a restart, an iteration) of the run seeded `seed`."""
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


def clip_to_ball(point: torch.Tensor, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """`point` projected onto each row's epsilon ball around `x` and onto [-1, 1]."""
    return torch.minimum(torch.maximum(point, x - eps), x + eps).clamp(-1.0, 1.0)
