"""How the record reads in words where several outputs say the same thing: the breaking epsilon's text, the order
of outcomes by severity and the id of a threat's worst case. The judging writes them into the record; the gate's
files, the release comparison and the report read them from here."""

from __future__ import annotations

from medaudit.records.measurements import BoundCheck
from medaudit.records.results import BreakingEpsilon

WORST_OVER_ATTACKS = "worst-over-attacks"  # the attack id of a threat's worst case over all its attacks
SEVERITY = {"PASS": 0, "INCONCLUSIVE": 1, "FAIL": 2, "ERROR": 3}  # a rule reports the most severe outcome it saw


def breaking_text(b: BreakingEpsilon | None) -> str:
    """`ε* 0.012 (0.010–0.015), 0.1× the bound's ε 0.12`, or `ε* > 0.12, the largest tried`; where the attack's
    SSIM never reached the bound, says so instead of giving a margin."""
    if b is None:
        return "ε* not measured"
    if b.epsilon_pm1 is None:
        return f"ε* > {b.largest_tried_pm1:g}, the largest tried"
    low = "—" if b.low_pm1 is None else f"{b.low_pm1:.3g}"
    high = f"> {b.largest_tried_pm1:g}" if b.high_pm1 is None else f"{b.high_pm1:.3g}"
    text = f"ε* {b.epsilon_pm1:.3g} ({low}–{high})"
    if b.bound_epsilon_pm1 is None:  # the attack's SSIM stayed above the bound over its whole grid
        return f"{text}; the bound is not reached up to ε {b.largest_tried_pm1:g}"
    return f"{text}, {b.margin:.2g}× the bound's ε {b.bound_epsilon_pm1:.3g}"


def bound_check_text(c: BoundCheck) -> str:
    """One white-box check in words, as page 1, the rules and the report's method section give it."""
    if c.check == "convergence":
        verb = "lowers" if c.auc_reference < c.auc_bound else "leaves"
        return (
            f"convergence at ε {c.epsilon_pm1:g} on {c.images} images: {c.against} {verb} its AUC "
            f"{c.auc_bound:.3f} to {c.auc_reference:.3f} (at most {c.tolerance:g} allowed)"
        )
    if c.check == "reach":
        return f"reach at ε {c.epsilon_pm1:g} on {c.images} images: AUC {c.auc_bound:.3f} (at most {c.auc_reference:g})"
    return (
        f"order at ε {c.epsilon_pm1:g} on {c.images} images: white-box AUC {c.auc_bound:.3f} against "
        f"{c.auc_reference:.3f} for the {c.against} (at most {c.tolerance:g} above it)"
    )
