"""The control: the attack's own perturbation with its pixels shuffled (Bortsova et al. 2021, section 4.1).

It keeps the perturbation's size and distribution of values and drops its structure, so the target's AUC under
the control shows what noise of the attack's size does, and adversarial minus control what the crafting adds.
"""

from __future__ import annotations

import numpy as np


def control_noise(x: np.ndarray, x_adv: np.ndarray, seed: int) -> np.ndarray:
    """The same perturbation, its pixel positions randomly permuted per image (channels kept together)."""
    rng = np.random.default_rng(seed)
    delta = x_adv - x
    n, c, h, w = delta.shape
    flat = delta.reshape(n, c, h * w)
    shuffled = np.stack([flat[i][:, rng.permutation(h * w)] for i in range(n)]).reshape(n, c, h, w)
    return np.clip(x + shuffled, -1.0, 1.0).astype(np.float32)
