"""From rules to the verdict card: one verdict per tier, one page-1 row per tier and criterion, and the checks
that span tiers (gradient masking; a white-box bound that settles a criterion for every attacker).

Gradient masking shows as the white-box attacker doing worse than a transfer or query attacker at the same
epsilon (RobustBench, Croce et al. 2021): then the white-box bound is not an upper bound, and the card says so.
Otherwise, a criterion the white-box attacker cannot break at any admissible epsilon holds for every tier, if
the white-box bound is verified (its convergence, reach and order checks pass; docs/bounds.md) and its grid
reaches the perceptibility bound's epsilon. A bound that fails a check passes nothing: its PASS rules become
INCONCLUSIVE and the run's verdict cannot be PASS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medaudit.attacks import TIERS
from medaudit.judging.rules import judge_rules, verdict_of
from medaudit.records import (
    CONTROL_STEPS,
    CRITERIA,
    SEVERITY,
    UNVERIFIED,
    BoundCheck,
    BreakingEpsilon,
    CellRecord,
    EpsilonChoice,
    GateRule,
    SurrogateResult,
    TierStatus,
    TierVerdict,
    Verdict,
    VerdictRow,
    bound_check_text,
    breaking_text,
    stated,
)
from medaudit.scenario import Scenario

MASKING_MARGIN = 0.02  # white-box relative AUC above another attacker's by more than this, at one epsilon
TIER_NAMES = {"transfer": "transfer attacker", "query": "query attacker", "whitebox": "white-box attacker"}
NEXT_STEP = {
    ("transfer", "INCONCLUSIVE"): "train stronger surrogates (more data, ImageNet init) or rely on the bounds",
    ("query", "FAIL"): "limit and monitor score access; harden the model and re-audit",
    ("query", "INCONCLUSIVE"): "raise the query budget or test images and re-audit",
    ("whitebox", "FAIL"): "keep the weights confidential; harden the model and re-audit",
    ("whitebox", "INCONCLUSIVE"): "use more test images for narrower intervals and re-audit",
}
UNVERIFIED_STEP = "raise APGD's iterations and restarts (or check the converted model) and re-audit"
PASSED = "none; re-audit every release"
ERRORED = "fix the run's error (see the rule) and re-audit"


@dataclass(frozen=True)
class Judgement:
    rules: tuple[GateRule, ...]
    tier_verdicts: tuple[TierVerdict, ...]
    rows: tuple[VerdictRow, ...]
    verdict: Verdict
    masking: str | None
    unverified: str | None  # why the white-box bound is not verified (None: it is, or it did not run)


def masking(cells: Sequence[CellRecord]) -> str | None:
    """Where the white-box attacker left the target more of its clean AUC than a transfer or query attacker did at
    the same epsilon (white-box relative AUC interpolated in epsilon), by more than MASKING_MARGIN; None if nowhere."""
    whitebox = sorted((c for c in cells if c.tier == "whitebox"), key=lambda c: c.epsilon_pm1)
    if not whitebox:
        return None
    eps = np.array([c.epsilon_pm1 for c in whitebox])
    best = {}  # epsilon -> the white-box attacks' lowest relative AUC there
    for c in whitebox:
        best[c.epsilon_pm1] = min(best.get(c.epsilon_pm1, math.inf), c.relative_auc.point)
    grid = np.array(sorted(best))
    values = np.array([best[e] for e in grid])
    worst = None
    for c in cells:
        if c.tier == "whitebox" or not eps.min() <= c.epsilon_pm1 <= eps.max():
            continue
        excess = float(np.interp(c.epsilon_pm1, grid, values)) - c.relative_auc.point
        if excess > MASKING_MARGIN and (worst is None or excess > worst[0]):
            worst = (excess, c, float(np.interp(c.epsilon_pm1, grid, values)))
    if worst is None:
        return None
    excess, c, wb = worst
    return (
        f"at ε {c.epsilon_pm1:g} the white-box attacker leaves {wb:.3f} of the clean AUC where {c.tier} attacker "
        f"{c.attacker_id} ({c.attack_id}) leaves {c.relative_auc.point:.3f}: its gradients may be masked, so the "
        "white-box result settles nothing for the other tiers"
    )


def unverified_bound(tiers: Sequence[TierStatus], order: BoundCheck | None) -> str | None:
    """Why the white-box bound is not a verified bound: its failed checks in words; None when every check passed
    or the tier did not run."""
    whitebox = next((t for t in tiers if t.tier == "whitebox" and t.available), None)
    if whitebox is None:
        return None
    failed = [c for c in whitebox.checks + ((order,) if order else ()) if not c.passed]
    if not failed:
        return None
    return f"{UNVERIFIED}: it fails " + "; ".join(bound_check_text(c) for c in failed)


def reaches_the_bound(choices: Sequence[EpsilonChoice]) -> bool:
    """Whether the white-box grid reaches the perceptibility bound's epsilon: an `auto` grid, or one in which the
    bound binds (a grid whose every epsilon is admissible stopped short of it)."""
    mine = [c for c in choices if c.tier == "whitebox"]
    return bool(mine) and all(c.search is not None or c.bound_binds for c in mine)


def _holds_everywhere(rules: list[GateRule], masked: str | None, unverified: str | None, reaches: bool) -> set[str]:
    """Criteria the white-box tier meets at every admissible epsilon, with no masking sign, from a verified bound
    whose grid reaches the perceptibility bound."""
    if masked or unverified or not reaches:
        return set()
    out = set()
    for criterion in {r.criterion_id for r in rules if r.tier == "whitebox"}:
        mine = [r for r in rules if r.tier == "whitebox" and r.criterion_id == criterion]
        if mine and all(r.status == "PASS" for r in mine):
            out.add(criterion)
    return out


def _bounds_sentence(rules: list[GateRule], criterion_id: str) -> str:
    """What the bound tiers achieve on one criterion, for a transfer row no trained attacker can judge."""
    parts = []
    for tier in ("whitebox", "query"):
        mine = [r for r in rules if r.tier == tier and r.criterion_id == criterion_id and r.breaking is not None]
        if mine:
            b = min((r.breaking for r in mine), key=lambda b: math.inf if b.epsilon_pm1 is None else b.epsilon_pm1)
            who = "an attacker with its weights" if tier == "whitebox" else "an attacker with its scores"
            parts.append(
                f"{who} breaks it: {breaking_text(b)}"
                if b.epsilon_pm1 is not None
                else f"{who} does not break it up to ε {b.largest_tried_pm1:g}"
            )
    return "; ".join(parts)


def cross_tier(
    rules: tuple[GateRule, ...], masked: str | None, unverified: str | None, reaches: bool
) -> tuple[GateRule, ...]:
    """Rules with what the bound tiers settle: an inconclusive rule passes where the white-box bound holds, and
    otherwise states what the bounds achieve; an unverified white-box bound passes nothing, its own rules included."""
    settled = _holds_everywhere(list(rules), masked, unverified, reaches)
    out = []
    for r in rules:
        if unverified and r.tier == "whitebox" and r.status == "PASS":
            r = r.model_copy(update={"status": "INCONCLUSIVE", "message": f"{unverified}. {r.message}"})
        elif r.status == "INCONCLUSIVE" and r.tier != "whitebox" and r.criterion_id in settled:
            r = r.model_copy(
                update={
                    "status": "PASS",
                    "message": "holds for every tier: the white-box attacker, the strongest there is, does not break "
                    f"it at any admissible ε and shows no sign of gradient masking; {r.message}",
                }
            )
        elif r.status == "INCONCLUSIVE" and r.tier == "transfer":
            bounds = _bounds_sentence(list(rules), r.criterion_id)
            if bounds:
                r = r.model_copy(update={"message": f"no transfer attacker we trained moves it; {bounds}. {r.message}"})
        out.append(r)
    return tuple(out)


def _earliest(rules: list[GateRule]) -> BreakingEpsilon | None:
    broken = [r.breaking for r in rules if r.breaking is not None]
    return min(broken, key=lambda b: math.inf if b.epsilon_pm1 is None else b.epsilon_pm1, default=None)


def _row(tier: str, criterion_id: str, rules: list[GateRule], gated: bool) -> VerdictRow:
    criterion = next(c for c in CRITERIA if c.id == criterion_id)
    worst = max(rules, key=lambda r: SEVERITY[r.status])
    b = _earliest(rules)
    status = worst.status
    if status == "PASS":
        reason = f"{criterion.short} holds at every admissible ε" + (
            f" (up to {b.largest_tried_pm1:g})" if b and b.epsilon_pm1 is None else ""
        )
    elif status == "FAIL":
        reason = f"{criterion.short} broken within the perceptibility budget ({worst.threat_id})"
    elif status == "INCONCLUSIVE":
        if UNVERIFIED in worst.message:
            reason = f"{UNVERIFIED}: a check on the white-box attack failed (section 4.1)"
        elif "no fit attacker" in worst.message:
            reason = "no fit transfer attacker: its perturbations move no other model"
        else:
            reason = "interval straddles the threshold"
    else:
        reason = "the run could not judge it"
    if status == "FAIL" and tier == "transfer":
        next_step = CONTROL_STEPS[criterion.control_id]
    elif status == "INCONCLUSIVE" and UNVERIFIED in worst.message:
        next_step = UNVERIFIED_STEP
    else:
        next_step = PASSED if status == "PASS" else ERRORED if status == "ERROR" else NEXT_STEP[(tier, status)]
    return VerdictRow(
        tier=tier,
        criterion_id=criterion_id,
        gated=gated,
        status=status,
        threat_id=worst.threat_id,
        result=breaking_text(b),
        reason=reason,
        next_step=next_step,
    )


def judge(
    scenario: Scenario,
    cells: Sequence[CellRecord],
    surrogates: Sequence[SurrogateResult],
    choices: Sequence[EpsilonChoice],
    breaking: Sequence[BreakingEpsilon],
    tiers: Sequence[TierStatus],
    order: BoundCheck | None,
) -> Judgement:
    """The whole judgement: rules, each tier's verdict, page 1's rows, the verdict over the gated tiers (`order`:
    the white-box bound's order check, `finalize.order_check`)."""
    masked = masking(cells)
    unverified = unverified_bound(tiers, order)
    judged = judge_rules(scenario, cells, surrogates, choices, breaking, tiers)
    rules = cross_tier(judged, masked, unverified, reaches_the_bound(choices))
    gated = scenario.gate.tiers
    ran = {"transfer"} | {t.tier for t in tiers if t.available}
    named = [t for t in TIERS if t == "transfer" or any(s.tier == t for s in tiers)]
    verdicts, rows = [], []
    for tier in named:
        mine = [r for r in rules if r.tier == tier]
        status = verdict_of([r.status for r in mine]) if tier in ran else "NOT RUN"
        unavailable = next((t.reason for t in tiers if t.tier == tier and not t.available), "")
        verdicts.append(
            TierVerdict(
                tier=tier,
                gated=tier in gated,
                status=status,
                masking=masked if tier == "whitebox" else None,
                order=order if tier == "whitebox" else None,
                unverified=unverified if tier == "whitebox" else None,
                statement=_statement(tier, mine, unavailable)
                + (f" It is {UNVERIFIED}." if tier == "whitebox" and unverified else ""),
            )
        )
        for criterion, _ in stated(scenario.gate):
            judged = [r for r in mine if r.criterion_id == criterion.id]
            if judged:
                rows.append(_row(tier, criterion.id, judged, tier in gated))
    gated_statuses = [v.status if v.status != "NOT RUN" else "INCONCLUSIVE" for v in verdicts if v.gated]
    if not stated(scenario.gate):
        gated_statuses = ["INCONCLUSIVE"]
    verdict = verdict_of(gated_statuses)
    if unverified and verdict == "PASS":  # a run whose white-box bound failed a check never exits 0
        verdict = "INCONCLUSIVE"
    return Judgement(
        rules=rules,
        tier_verdicts=tuple(verdicts),
        rows=tuple(rows),
        verdict=verdict,
        masking=masked,
        unverified=unverified,
    )


def _statement(tier: str, rules: list[GateRule], unavailable: str) -> str:
    if unavailable:
        return f"The {TIER_NAMES[tier]} could not run on this target: {unavailable}."
    b = _earliest(rules)
    if b is None:
        return f"The {TIER_NAMES[tier]} was not judged."
    if b.epsilon_pm1 is None:
        return f"The {TIER_NAMES[tier]} breaks no criterion up to ε {b.largest_tried_pm1:g}."
    return f"The {TIER_NAMES[tier]} breaks a criterion first ({b.attacker_id}, {b.attack_id}): {breaking_text(b)}."
