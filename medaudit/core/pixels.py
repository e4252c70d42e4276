"""The one conversion between 8-bit grey levels and the canonical image range the audit works in.

Canonical images are float32 in [-1, 1] (Bortsova et al. 2021, section 3.2): 0 grey is -1, 255 is +1, so one
unit of [-1, 1] is 127.5 grey levels and an epsilon in [-1, 1] units reads as `epsilon * 127.5` grey levels.
"""

from __future__ import annotations

import numpy as np

GREY_LEVELS_PER_PM1 = 127.5  # canonical images span [-1, 1], the 255 steps of an 8-bit grey scale
ONE_GREY_LEVEL_PM1 = 1 / GREY_LEVELS_PER_PM1  # 2/255: the smallest change an 8-bit file carries


def pm1_from_grey(images: np.ndarray) -> np.ndarray:
    """8-bit grey levels 0..255 (any shape) -> float32 in [-1, 1]: the one conversion into the canonical range."""
    return (np.asarray(images, dtype=np.float32) / GREY_LEVELS_PER_PM1 - 1.0).astype(np.float32)


def grey_from_pm1(x: np.ndarray) -> np.ndarray:
    """Float images in [-1, 1] (any shape) -> uint8 grey levels, rounded to the nearest and clipped: the one way
    back (8-bit delivery, example images)."""
    return np.rint((np.asarray(x) + 1.0) * GREY_LEVELS_PER_PM1).clip(0, 255).astype(np.uint8)


def deliver_uint8(x: np.ndarray) -> np.ndarray:
    """Round-trip canonical images through 8-bit files, as an attacker would hand them over."""
    return pm1_from_grey(grey_from_pm1(x))
