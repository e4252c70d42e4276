"""How one of the paper's findings is judged on one modality: pure functions, no files.

A finding is a claim about a difference d measured on the same test images (paired bootstrap,
`medaudit.metrics.bootstrap_paired_difference`): d lies below (or above) a bound. It is checked by several
comparisons (target architecture x attack, ...). Each comparison is either blocked (not testable, with the
reason: a target at chance, an unfit attacker, an unmet premise, a missing run) or judged by Holm's step-down
procedure (Holm 1979) over the testable ones, so the family's chance of any false decision stays at most
1 - `FAMILY_CONFIDENCE`: at step j the open comparisons are judged on intervals at confidence
1 - alpha / (open comparisons); those whose interval excludes the bound are decided, the rest go to the next
step, until a step decides nothing. The finding's outcome follows from the decisions (`outcome`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from medaudit.finalize import breaks, learned, moves_siblings
from medaudit.metrics import Interval, bootstrap_paired_difference
from medaudit.results import SurrogateResult

FAMILY_CONFIDENCE = 0.95  # Holm: the chance that any decision in one finding's family is wrong stays <= 5 %
PREMISE_CONFIDENCE = 0.95  # a premise (pre-training raises clean AUC) is a condition, judged alone at 95 %
CHANCE_AUC = 0.5  # a target whose clean AUC lower bound reaches this cannot be attacked: nothing to lose
# resamples per paired interval: Holm's strictest level with 4 comparisons is 98.75 %, i.e. 0.625 % per tail,
# which 4000 resamples place on 25 values per tail
VERDICT_RESAMPLES = 4000
VERDICT_SEED = 0  # one seeded set of resamples per comparison, shared by every confidence level

Outcome = Literal["holds", "does not hold", "cannot be told apart", "not testable"]
OUTCOMES: tuple[Outcome, ...] = ("holds", "does not hold", "cannot be told apart", "not testable")
Decision = Literal["supports", "contradicts", "undecided"]
IntervalAt = Callable[[float], Interval]  # a comparison's paired interval at a given confidence


@dataclass(frozen=True)
class Claim:
    """What a finding says about its difference d: d < bound (`below`) or d > bound (`above`)."""

    side: Literal["below", "above"]
    bound: float  # 0 for a direction; a tolerance for a threshold, e.g. clean - control <= 0.01
    every: bool  # True: every comparison must support it (a bound on each cell); False: one is enough (a direction)
    measure: str  # what d is, in words, e.g. "relative AUC, IN→IN minus R→R"


@dataclass(frozen=True)
class Comparison:
    """One check of a claim: a label, and either its paired interval or why it cannot be tested."""

    label: str  # e.g. "Lite0 target, FGSM"
    interval_at: IntervalAt | None  # None when blocked
    blockers: tuple[str, ...] = ()  # why it is not testable (empty: testable)
    caveats: tuple[str, ...] = ()  # what a reader must know about a testable one (`no_sibling_transfer`)


@dataclass(frozen=True)
class Judged:
    """A comparison after Holm: the interval it was judged on and the decision (None: not testable)."""

    label: str
    interval: Interval | None
    decision: Decision | None
    blockers: tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    judged: tuple[Judged, ...]
    reasons: tuple[str, ...]  # distinct blockers, for the not-testable comparisons
    caveats: tuple[str, ...] = ()  # distinct caveats of the comparisons that were judged


def decide(interval: Interval, claim: Claim) -> Decision:
    """Supports: the whole interval lies on the claimed side of the bound; contradicts: on the other side."""
    if not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return "undecided"
    below, above = interval.high < claim.bound, interval.low > claim.bound
    if not (below or above):
        return "undecided"
    return "supports" if below == (claim.side == "below") else "contradicts"


def holm(intervals_at: Sequence[IntervalAt], claim: Claim, family_confidence: float = FAMILY_CONFIDENCE):
    """Holm's step-down procedure on intervals: [(interval judged on, decision)] in input order."""
    alpha = 1.0 - family_confidence
    open_ = list(range(len(intervals_at)))
    out: dict[int, tuple[Interval, Decision]] = {}
    while open_:
        confidence = 1.0 - alpha / len(open_)
        step = {i: intervals_at[i](confidence) for i in open_}
        decided = [i for i in open_ if decide(step[i], claim) != "undecided"]
        if not decided:
            out.update({i: (step[i], "undecided") for i in open_})
            break
        out.update({i: (step[i], decide(step[i], claim)) for i in decided})
        open_ = [i for i in open_ if i not in decided]
    return [out[i] for i in range(len(intervals_at))]


def outcome(decisions: Sequence[Decision], claim: Claim) -> Outcome:
    """Not testable: no comparison could be judged. Does not hold: one contradicts it. Holds: one supports a
    direction (`every` False), or all support a bound (`every` True). Otherwise: cannot be told apart."""
    if not decisions:
        return "not testable"
    if "contradicts" in decisions:
        return "does not hold"
    supported = all(d == "supports" for d in decisions) if claim.every else "supports" in decisions
    return "holds" if supported else "cannot be told apart"


def judge(comparisons: Sequence[Comparison], claim: Claim, family_confidence: float = FAMILY_CONFIDENCE) -> Verdict:
    """Holm over the testable comparisons, then `outcome`; blocked ones are reported with their reasons."""
    testable = [i for i, c in enumerate(comparisons) if not c.blockers and c.interval_at is not None]
    results = dict(zip(testable, holm([comparisons[i].interval_at for i in testable], claim, family_confidence)))
    judged = tuple(
        Judged(c.label, *results[i], blockers=()) if i in results else Judged(c.label, None, None, c.blockers)
        for i, c in enumerate(comparisons)
    )
    reasons = tuple(dict.fromkeys(b for c in comparisons for b in c.blockers))
    caveats = tuple(dict.fromkeys(x for i, c in enumerate(comparisons) if i in results for x in c.caveats))
    return Verdict(outcome([j.decision for j in judged if j.decision], claim), judged, reasons, caveats)


def signed(interval: Interval) -> str:
    """A difference and its interval as the document writes them: "+0.037 (+0.008, +0.073)"."""
    return f"{interval.point:+.3f} ({interval.low:+.3f}, {interval.high:+.3f})"


def judged_text(j: Judged) -> str:
    """A judged comparison with the interval and confidence Holm decided it on (`j.interval` is set)."""
    return f"{j.label}: {signed(j.interval)} at {j.interval.confidence:.2%}"


# ---------------------------------------------------------------- blockers
def at_chance(clean_auc: Interval, what: str) -> tuple[str, ...]:
    """A target whose clean AUC interval reaches chance has nothing an attack could take away."""
    if clean_auc.low > CHANCE_AUC:
        return ()
    return (f"{what} is at chance (clean AUC {clean_auc.point:.3f}, lower bound {clean_auc.low:.3f} ≤ {CHANCE_AUC:g})",)


def representative(surrogates: Sequence[SurrogateResult], row_id: str) -> SurrogateResult | None:
    """The attacker that stands for a row: the ensemble of all its seeds (chosen before seeing the target's
    response, unlike the most harmful seed), or its one surrogate; None when the row has neither."""
    seeds = [s for s in surrogates if s.row_id == row_id and not s.member_ids]
    ids = {s.id for s in seeds}
    ensemble = next((s for s in surrogates if s.row_id == row_id and s.member_ids and set(s.member_ids) == ids), None)
    if ensemble is not None:
        return ensemble
    return seeds[0] if len(seeds) == 1 else None


def not_competent(surrogate: SurrogateResult, attack_id: str) -> str | None:
    """Why `surrogate` is no attacker for a comparison made with `attack_id`, or None: it did not learn the task
    (its clean test AUC's lower bound is below the run's floor) or `attack_id`, run white-box on it at the ε its
    run chose, does not break it. The audit's third fitness criterion, that its images move the row's other
    seeds, is not required here: findings 1-5 and 7 compare how far perturbations transfer, and requiring them
    to transfer would assume what is measured (the white-box table reports that check)."""
    fitness = surrogate.fitness
    if fitness is None:
        return "fitness was not recorded"
    auc = surrogate.test_auc
    if not learned(auc, fitness.test_auc_floor):
        return (
            f"clean test AUC {auc.point:.3f} (lower bound {auc.low:.3f}) below the floor "
            f"{fitness.test_auc_floor:g}: it did not learn the task"
        )
    checks = [w for w in fitness.whitebox if w.attack_id == attack_id]
    if not checks:
        return f"no white-box check of {attack_id} recorded"
    for w in checks:
        if not breaks(w.auc_whitebox, w.bound):
            return (
                f"{attack_id} white-box at ε {w.epsilon_pm1:g} leaves its own AUC at {w.auc_whitebox:.3f} > "
                f"{w.bound:g}: the attack does not break its own model"
            )
    return None


def unfit(
    attacker: SurrogateResult, surrogates: Sequence[SurrogateResult], what: str, attack_id: str
) -> tuple[str, ...]:
    """Why an attacker is no evidence under `attack_id`: it, or one of its ensemble's members, is not competent
    (`not_competent`); an ensemble is no stronger evidence than the models it averages."""
    by_id = {s.id: s for s in surrogates}
    involved = [attacker] + [by_id[m] for m in attacker.member_ids]
    bad = [(s, why) for s in involved if (why := not_competent(s, attack_id)) is not None]
    if not bad:
        return ()
    first, why = bad[0]
    return (f"{what}: {len(bad)} of {len(involved)} surrogates unfit for {attack_id} ({first.id}: {why})",)


def no_sibling_transfer(
    attacker: SurrogateResult, surrogates: Sequence[SurrogateResult], what: str, attack_id: str
) -> tuple[str, ...]:
    """A caveat, not a blocker (see `not_competent`): none of the seeds behind `attacker` has `attack_id` images
    that move another seed of its row (the audit's fitness criterion 3), so a comparison resting on it compares
    perturbations that do not even transfer between copies of one model."""
    by_id = {s.id: s for s in surrogates}
    seeds = [by_id[m] for m in attacker.member_ids] or [attacker]
    checks = [
        w
        for s in seeds
        if s.fitness is not None
        for w in s.fitness.whitebox
        if w.attack_id == attack_id and w.sibling_relative_auc is not None
    ]
    if not checks or any(moves_siblings(w.sibling_relative_auc, w.sibling_bound) for w in checks):
        return ()
    low, high = min(w.sibling_relative_auc for w in checks), max(w.sibling_relative_auc for w in checks)
    return (
        f"{what}: the {attack_id} images of none of its {len(seeds)} seeds move another seed of the row "
        f"(siblings keep {low:.2f}–{high:.2f} of their clean AUC > {checks[0].sibling_bound:g})",
    )


def premise(difference: Interval, what: str) -> tuple[str, ...]:
    """A conditional finding applies only where its condition holds: the difference is above 0 at 95 %."""
    if difference.low > 0:
        return ()
    return (
        f"{what}: {signed(difference)}, not above 0 at {PREMISE_CONFIDENCE:.0%}, so the finding's condition is not met",
    )


# ---------------------------------------------------------------- paired intervals from per-image scores
@dataclass(frozen=True)
class Scored:
    """One side of a comparison: the target's scores on the reference images and on the perturbed ones."""

    reference: np.ndarray  # (N,) e.g. clean scores
    perturbed: np.ndarray  # (N,) e.g. adversarial scores


def relative_difference(y: np.ndarray, groups: np.ndarray | None, a: Scored, b: Scored) -> IntervalAt:
    """d = AUC(a.perturbed)/AUC(a.reference) - AUC(b.perturbed)/AUC(b.reference), paired over the same
    images (or patients, with `groups`); a function of the confidence, computed once per confidence."""
    cache: dict[float, Interval] = {}

    def at(confidence: float) -> Interval:
        if confidence not in cache:
            cache[confidence] = bootstrap_paired_difference(
                y,
                a.reference,
                a.perturbed,
                b.reference,
                b.perturbed,
                resamples=VERDICT_RESAMPLES,
                confidence=confidence,
                seed=VERDICT_SEED,
                groups=groups,
            ).relative_auc
        return cache[confidence]

    return at


def auc_difference(y: np.ndarray, groups: np.ndarray | None, a: np.ndarray, b: np.ndarray) -> IntervalAt:
    """d = AUC(a) - AUC(b) on the same images, e.g. clean - control (scores (N,))."""
    cache: dict[float, Interval] = {}

    def at(confidence: float) -> Interval:
        if confidence not in cache:
            cache[confidence] = bootstrap_paired_difference(
                y, a, a, b, b, resamples=VERDICT_RESAMPLES, confidence=confidence, seed=VERDICT_SEED, groups=groups
            ).auc_adversarial
        return cache[confidence]

    return at
