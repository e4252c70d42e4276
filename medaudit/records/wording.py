"""How the record reads in words where several outputs say the same thing: the breaking epsilon's text, the order
of outcomes by severity and the id of a threat's worst case. The judging writes them into the record; the gate's
files, the release comparison and the report read them from here."""

from __future__ import annotations

from medaudit.core import GREY_LEVELS_PER_PM1
from medaudit.records.measurements import BoundCheck
from medaudit.records.results import BreakingEpsilon

WORST_OVER_ATTACKS = "worst-over-attacks"  # the attack id of a threat's worst case over all its attacks
SEVERITY = {"PASS": 0, "INCONCLUSIVE": 1, "FAIL": 2, "ERROR": 3}  # a rule reports the most severe outcome it saw


TIER_LABELS = {"transfer": "transfer", "query": "query", "whitebox": "white-box"}
UNVERIFIED = "not a verified bound"  # the words for a white-box tier that failed one of its checks


def tier_label(tier: str, gated: bool, unverified: bool = False) -> str:
    """A tier as page 1 and summary.md name it: a tier the gate does not read is `reported`; the white-box tier is
    also `verified` or `not a verified bound`."""
    if gated:
        return TIER_LABELS[tier]
    if tier == "whitebox":
        return f"{TIER_LABELS[tier]} (reported; {UNVERIFIED if unverified else 'verified'})"
    return f"{TIER_LABELS[tier]} (reported)"


def row_counts_text(statuses: list[str]) -> str:
    """`6 rows: 1 pass, 3 fail, 2 inconclusive`: page 1's rows counted over those rows (summary.md says the same)."""
    order = ("PASS", "FAIL", "INCONCLUSIVE", "ERROR", "NOT RUN")
    counted = [f"{statuses.count(o)} {o.lower()}" for o in order if statuses.count(o)]
    return f"{len(statuses)} row{'' if len(statuses) == 1 else 's'}: {', '.join(counted) or 'none judged'}"


def grey_text(e_pm1: float) -> str:
    """An epsilon in 8-bit grey levels, three significant digits: 0.0157 -> `2`."""
    return f"{e_pm1 * GREY_LEVELS_PER_PM1:.3g}"


def measured_text(b: BreakingEpsilon) -> str:
    """The bracket and the points behind ε*: `holds at 1.02; 7 ε measured, 3 by bisection`."""
    n, k = len(b.measured), b.bisection_points
    return f"holds at {grey_text(b.holds_at_pm1)}; {n} ε measured{f', {k} by bisection' if k else ''}"


def interval_text(b: BreakingEpsilon) -> str:
    """ε*'s bootstrap interval in grey levels: `1.02–1.59`; where some resamples never break, `1.02 to beyond 12.8,
    the largest tried`; where none breaks, `no resample breaks up to 12.8, the largest tried`."""
    largest = grey_text(b.largest_tried_pm1)
    if b.low_pm1 is None:
        return f"no resample breaks up to {largest}, the largest tried"
    if b.high_pm1 is None:
        return f"{grey_text(b.low_pm1)} to beyond {largest}, the largest tried"
    return f"{grey_text(b.low_pm1)}–{grey_text(b.high_pm1)}"


def breaking_text(b: BreakingEpsilon | None) -> str:
    """ε* in grey levels first, [-1, 1] units beside, its interval and bracket, then the budget's ε (where the
    perceptibility budget binds) and the near-invisible reference: `ε* 1.28 grey levels [0.01] (1.02–1.59); holds
    at 1.02; 7 ε measured, 3 by bisection; 0.12× the budget's 10.2; near-invisible 2.55`; `ε* > 12.8 grey levels
    [0.1], the largest tried`; under 8-bit delivery, `breaks at the smallest change an 8-bit image can carry (1 grey
    level [0.00784], 5 ε measured); ...`."""
    if b is None:
        return "ε* not measured"
    if b.epsilon_pm1 is None:
        return f"ε* > {grey_text(b.largest_tried_pm1)} grey levels [{b.largest_tried_pm1:.3g}], the largest tried"
    if b.at_one_grey_level:
        text = (
            f"breaks at the smallest change an 8-bit image can carry (ε* 1 grey level [{b.epsilon_pm1:.3g}], "
            f"{len(b.measured)} ε measured)"
        )
    else:
        text = (
            f"ε* {grey_text(b.epsilon_pm1)} grey levels [{b.epsilon_pm1:.3g}] ({interval_text(b)}); {measured_text(b)}"
        )
    near = "" if b.near_invisible_epsilon_pm1 is None else f"; near-invisible {grey_text(b.near_invisible_epsilon_pm1)}"
    if b.bound_epsilon_pm1 is None:  # the attack's SSIM stayed above the budget over its whole grid
        return f"{text}; the budget is not reached up to {grey_text(b.largest_tried_pm1)} grey levels{near}"
    return f"{text}; {b.margin:.2g}× the budget's {grey_text(b.bound_epsilon_pm1)}{near}"


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
