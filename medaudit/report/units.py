"""ε in the three units a reader needs: [-1, 1] (the audit's), 8-bit grey levels, and the target's own input units.

The audit works on images scaled to [-1, 1]; the target's card says how black and white map onto its input,
either as a value range (lo, hi) or as a per-channel mean/std applied to [0, 1] images (foolbox's model bounds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from medaudit.core import GREY_LEVELS_PER_PM1

if TYPE_CHECKING:  # the report reads records only; the card's type is named for the signatures
    from medaudit.records import CardFields


def native_unit(card: CardFields) -> str:
    """How the target's input units are defined, for column headers and notes."""
    if card.value_range is not None:
        lo, hi = card.value_range
        return f"target input units (black {lo:g}, white {hi:g})"
    if card.std is not None:
        return "target input units ((x − mean) / std on [0, 1] images, per channel)"
    return "target input units (not stated in the card)"


def native_epsilon(e: float | None, card: CardFields) -> str:
    """ε in the target's own input units: (hi − lo) / 2 per [-1, 1] unit, or 1 / (2 std) per channel."""
    if e is None:
        return "—"
    if card.value_range is not None:
        lo, hi = card.value_range
        return f"{e * (hi - lo) / 2:.4g}"
    if card.std is not None:
        return " / ".join(f"{e / (2 * s):.4g}" for s in card.std)
    return "not stated"


def grey(e: float | None) -> str:
    return "—" if e is None else f"{e * GREY_LEVELS_PER_PM1:.3g}"
