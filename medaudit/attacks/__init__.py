"""The attack registry: one class per attack, each naming its tier (transfer, query, white-box).

A scenario's `attacks:` entries are validated against `AttackSpec`, the union of the registry's classes told
apart by `name`; tests are parametrised over `ATTACKS`, so a new attack enrols itself by being added here.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from medaudit.attacks.apgd import APGD
from medaudit.attacks.base import TIERS, Attack, Crafting, Perturbed, Tier
from medaudit.attacks.noise import control_noise
from medaudit.attacks.square import Square
from medaudit.attacks.surrogate import LogitEnsemble
from medaudit.attacks.transfer import FGSM, MIFGSM, PGD

ATTACKS: dict[str, type[Attack]] = {
    "fgsm": FGSM,
    "pgd": PGD,
    "mifgsm": MIFGSM,
    "apgd": APGD,
    "square": Square,
}  # scenario name -> class; each class's `name` field is that literal
AttackSpec = Annotated[Union[tuple(ATTACKS.values())], Field(discriminator="name")]

__all__ = [
    "ATTACKS",
    "APGD",
    "Attack",
    "AttackSpec",
    "Crafting",
    "FGSM",
    "LogitEnsemble",
    "MIFGSM",
    "PGD",
    "Perturbed",
    "Square",
    "TIERS",
    "Tier",
    "control_noise",
]
