"""The per-image target scores the executor stored for every grid cell, read once per job from the cache."""

from __future__ import annotations

import numpy as np

from medaudit.core import Cache
from medaudit.engine import CellArrays, Executed
from medaudit.judging import CellScores
from medaudit.records import CellRecord


class StoredScores:
    """Each cell's per-image arrays, read once per job from the cache."""

    def __init__(self, cache_dir: str, executed: Executed):
        cache = Cache(cache_dir)
        self.arrays: dict[str, CellArrays] = {}
        self.key_of: dict[str, str] = {}  # cell id -> its job's cache key
        for outcome in executed.cells + executed.bounds:
            if outcome.records:
                self.arrays[outcome.key] = CellArrays.load(cache, outcome.kind, outcome.key)
                self.key_of.update({r.id: outcome.key for r in outcome.records})

    def __call__(self, cell: CellRecord) -> CellScores:
        a = self.arrays[self.key_of[cell.id]]
        i = a.at(cell.epsilon_pm1)
        return CellScores(a.image_indices, a.adversarial_scores[i], a.control_scores[i])

    def flips(self, cell: CellRecord) -> list[tuple[int, np.ndarray, float]]:
        a = self.arrays[self.key_of[cell.id]]
        i = a.at(cell.epsilon_pm1)
        score_of = dict(zip(a.image_indices.tolist(), a.adversarial_scores[i].tolist()))
        return [(int(j), img, score_of[int(j)]) for j, img in zip(a.example_indices[i], a.example_images[i]) if j >= 0]
