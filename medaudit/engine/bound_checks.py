"""The white-box tier's own checks (Carlini et al. 2019; docs/bounds.md): does its attack converge, and does it
reach chance at a large epsilon? The order check (no weaker than the other tiers) needs every tier's cells and is
judged in `medaudit.judging.finalize.order_check`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medaudit.attacks import APGD, Crafting
from medaudit.records import BoundCheck

CHECK_IMAGES = 64  # test images (stratified) the convergence and reach checks attack again
CONVERGENCE_FACTOR = 2  # the convergence check's attack has this many times the iterations and the restarts
CONVERGENCE_TOLERANCE = 0.005  # AUC the stronger attack may take off and the bound still count as converged
REACH_EPSILON_PM1 = 0.5  # a quarter of the pixel range: any undefended classifier falls to chance or below
REACH_AUC = 0.05  # the white-box AUC at REACH_EPSILON_PM1 must fall to this


def whitebox_checks(
    attack: APGD,
    victim,
    x: np.ndarray,
    y: np.ndarray,
    x_adv: dict[float, np.ndarray],
    how: Crafting,
    target_auc: Callable[[np.ndarray], float],
) -> tuple[BoundCheck, ...]:
    """Convergence at each epsilon of `x_adv` (the audit's own adversarial images of `x` there), then reach at
    REACH_EPSILON_PM1, on images `x` with labels `y`; `target_auc` scores images on the target itself."""
    stronger = attack.stronger(CONVERGENCE_FACTOR)
    checks = []
    for eps, images in x_adv.items():
        base = target_auc(images)
        converged = target_auc(stronger.craft(victim, x, y, (eps,), how)[eps].x_adv)
        checks.append(
            BoundCheck(
                check="convergence",
                passed=bool(base <= converged + CONVERGENCE_TOLERANCE),
                epsilon_pm1=eps,
                images=len(x),
                auc_bound=base,
                auc_reference=converged,
                tolerance=CONVERGENCE_TOLERANCE,
                against=stronger.id,
            )
        )
    reached = target_auc(attack.craft(victim, x, y, (REACH_EPSILON_PM1,), how)[REACH_EPSILON_PM1].x_adv)
    checks.append(
        BoundCheck(
            check="reach",
            passed=bool(reached <= REACH_AUC),
            epsilon_pm1=REACH_EPSILON_PM1,
            images=len(x),
            auc_bound=reached,
            auc_reference=REACH_AUC,
            tolerance=0.0,
            against=f"AUC {REACH_AUC:g}",
        )
    )
    return tuple(checks)
