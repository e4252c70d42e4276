"""Every epsilon of a grid in one pass: an L-inf attack's epsilon only scales its steps and its projection, so the
images of all epsilons are attacked together, repeated along the batch with an epsilon per row.

Rows are (epsilon, image) pairs, epsilon-major. They are attacked `rows_per_pass` at a time, and the last pass is
padded to full size by repeating its first row, so that every forward and backward pass has the same batch size:
on CPU, torch's convolutions give each row bit-identical results whatever the other rows of the batch are, but not
always across batch sizes (MobileNetV2 and ResNet-18 differ in the 17th digit at 17 rows). An attack's row
function computes each row from that row alone (losses summed, not averaged, over the batch), so crafting a grid
in one pass gives, bit for bit, what crafting each epsilon alone gives (tests/test_attacks.py). The pass size is
the memory cap: `Crafting.batch_size` rows go through the model at once, whatever the number of epsilons. PGD and
MI-FGSM advance every row of the grid step by step (`transfer.iterate`), so they also hold the grid's points, as
large as its output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from medaudit.attacks.base import Perturbed, projected

# attacks one chunk of rows: (images, labels, epsilon per row (R, 1, 1, 1), step per row (idem), test-image index
# per row) -> images
RowAttack = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Grid:
    """The (epsilon, image) rows of a grid, epsilon-major: row `i * n + j` attacks image j at the i-th epsilon."""

    x: torch.Tensor  # (n, C, H, W) the images, float32
    y: torch.Tensor  # (n, ...) their labels
    epsilons_pm1: tuple[float, ...]  # distinct, in the caller's order
    image: torch.Tensor  # (R,) row -> test image
    eps: torch.Tensor  # (R, 1, 1, 1) each row's epsilon, float32
    step: torch.Tensor  # (R, 1, 1, 1) each row's step, float32

    @classmethod
    def of(
        cls, x: np.ndarray, y: np.ndarray, epsilons_pm1: Sequence[float], step_of: Callable[[float], float]
    ) -> "Grid":
        """`step_of`: each epsilon's step, computed in float64 from the epsilon as the scenario states it (as ART
        computes it) and only then made float32."""
        epsilons = tuple(dict.fromkeys(float(e) for e in epsilons_pm1))
        xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        n, shape = len(xt), (-1,) + (1,) * (xt.dim() - 1)  # one value per row, broadcast over the image
        return cls(
            x=xt,
            y=torch.from_numpy(np.asarray(y)),
            epsilons_pm1=epsilons,
            image=torch.arange(n).repeat(len(epsilons)),
            eps=torch.tensor(epsilons, dtype=torch.float32).repeat_interleave(n).view(shape),
            step=torch.tensor([step_of(e) for e in epsilons], dtype=torch.float32).repeat_interleave(n).view(shape),
        )

    @property
    def previous(self) -> torch.Tensor:
        """(R,) each row's row of the same image at the epsilon before it; -1 for the first epsilon's rows."""
        return torch.arange(len(self.image)) - len(self.x)

    def images(self, rows: torch.Tensor) -> dict[float, Perturbed]:
        """The attacked rows (R, C, H, W) as each epsilon's images, re-clipped to its ball."""
        n, x = len(self.x), self.x.numpy()
        return {e: projected(x, rows[i * n : (i + 1) * n].numpy(), e) for i, e in enumerate(self.epsilons_pm1)}


def passes(rows: torch.Tensor, rows_per_pass: int):
    """`rows` in passes of `rows_per_pass`, each padded to full size by repeating its first row: (the pass's rows,
    the padded rows) per pass."""
    if rows_per_pass < 1:
        raise ValueError(f"rows_per_pass must be >= 1, got {rows_per_pass}")
    for start in range(0, len(rows), rows_per_pass):
        chunk = rows[start : start + rows_per_pass]
        yield chunk, torch.cat([chunk, chunk[:1].repeat(rows_per_pass - len(chunk))])


def over_rows(
    x: np.ndarray,
    y: np.ndarray,
    epsilons_pm1: Sequence[float],
    rows_per_pass: int,
    attack: RowAttack,
    step_of: Callable[[float], float] = lambda eps: eps,
) -> dict[float, Perturbed]:
    """`attack` on every (epsilon, image) row of `x` at `epsilons_pm1`, `rows_per_pass` rows at a time; the images
    of each epsilon, re-clipped to its ball (`Grid`)."""
    grid = Grid.of(x, y, epsilons_pm1, step_of)
    out = torch.empty((len(grid.image),) + tuple(grid.x.shape[1:]), dtype=torch.float32)
    for rows, padded in passes(torch.arange(len(grid.image)), rows_per_pass):
        index = grid.image[padded]
        out[rows] = attack(grid.x[index], grid.y[index], grid.eps[padded], grid.step[padded], index)[: len(rows)].cpu()
    return grid.images(out)


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
