"""Small generated data sets in MedMNIST's .npz layout, for tests that need no real images.

Positives carry a bright square at a random place, so a tiny CNN learns them in a few epochs; a
transfer attack then has something real to break.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPLIT_SIZES = {"train": 240, "val": 60, "test": 80}


def blob_images(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size) uint8 noise images, half with a bright 4x4 square; labels (n, 1) uint8."""
    x = rng.normal(90, 25, size=(n, size, size)).clip(0, 255)
    y = (np.arange(n) % 2).astype(np.uint8)
    for i in np.flatnonzero(y):
        r, c = rng.integers(0, size - 4, size=2)
        x[i, r:r + 4, c:c + 4] += 110
    return x.clip(0, 255).astype(np.uint8), y[:, None]


def write_blob_npz(path: Path, size: int = 16, seed: int = 0, sizes: dict[str, int] = SPLIT_SIZES) -> Path:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in sizes.items():
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = blob_images(n, size, rng)
    np.savez(path, **arrays)
    return path
