"""The one outcome rule every finding is judged by: pure functions, no files.

A finding is a claim about a difference d measured on the same test images (paired bootstrap,
`medaudit.core.metrics.bootstrap_paired_difference`): d lies below (or above) a bound. Several comparisons check it
(target architecture x attack, ...). Each comparison is, in this order:

- not testable: a run, row or cell is absent, or a precondition is unmet (a target at chance, an attacker that did
  not learn, a `different` row not made under the fixed rule, finding 1's premise), with the reason;
- no transfer: its reference arm, the attacker on the target that the finding says transfers more, does not beat
  its own control (the lower bound of its adversarial-specific drop, control minus adversarial AUC, is not above
  0), so there is nothing to compare; it counts neither for nor against the finding. An arm the finding says
  transfers less may be silent: that is the finding's evidence, and the comparison is judged;
- judged: by Holm's step-down procedure (Holm 1979) over the judged comparisons of the finding on one modality, so
  the family's chance of any false decision stays at most 1 - `FAMILY_CONFIDENCE`: supports (the interval wholly
  on the claimed side of the bound), contradicts (wholly on the other side) or undecided.

The finding's outcome (`outcome`) is symmetric: all decided comparisons support it: holds; all contradict: does not
hold; both: mixed; none decided: cannot be told apart; nothing judged but some comparison without transfer: no
transfer to compare; nothing judged otherwise: not testable.

`assess` also gives the outcome had any silent arm set its comparison aside (`ANY_ARM`, the rule before issue 35),
so the document can name the outcomes that the silent arms decide, and the comparisons that decide them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from medaudit.core.metrics import Interval, bootstrap_paired_difference
from reproduction.arm_epsilon import ArmEpsilon

FAMILY_CONFIDENCE = 0.95  # Holm: the chance that any decision in one finding's family is wrong stays <= 5 %
PREMISE_CONFIDENCE = 0.95  # a premise (pre-training raises clean AUC) is a condition, judged alone at 95 %
CHANCE_AUC = 0.5  # a target whose clean AUC lower bound reaches this has nothing an attack could take away
# resamples per paired interval: Holm's strictest level with 8 comparisons is 99.375 %, 0.3125 % per tail, which
# 4000 resamples place on 12 values per tail
VERDICT_RESAMPLES = 4000
VERDICT_SEED = 0  # one seeded set of resamples per comparison, shared by every confidence level

FindingOutcome = Literal[
    "holds", "does not hold", "mixed", "cannot be told apart", "no transfer to compare", "not testable"
]
OUTCOMES: tuple[FindingOutcome, ...] = (
    "holds",
    "does not hold",
    "mixed",
    "cannot be told apart",
    "no transfer to compare",
    "not testable",
)
Decision = Literal["supports", "contradicts", "undecided"]
MARKS: dict[Decision, str] = {"supports": "✓", "contradicts": "✗", "undecided": "≈"}  # a decision in a table
Status = Literal["judged", "no transfer", "not testable"]
SetAside = Literal["reference arm", "any arm"]  # which silent arm sets a comparison aside as `no transfer`
REFERENCE_ARM: SetAside = "reference arm"  # the rule: only the arm the finding says transfers more
ANY_ARM: SetAside = "any arm"  # the rule before issue 35, kept to show what the silent arms decide
IntervalAt = Callable[[float], Interval]  # a comparison's paired interval at a given confidence


@dataclass(frozen=True)
class Claim:
    """What a finding says about its difference d: d < bound (`below`) or d > bound (`above`)."""

    side: Literal["below", "above"]
    bound: float  # 0 for a direction; a tolerance for a threshold, e.g. clean - control <= 0.01
    measure: str  # what d is, in words


@dataclass(frozen=True)
class Arm:
    """An attacker a comparison uses, on the target, with its adversarial-specific drop at the comparison's ε."""

    label: str  # e.g. "same-random-d1 FGSM ε 0.02"
    drop: Interval  # control minus adversarial AUC on the target (the audit's interval)
    row: str = ""  # the surrogate row, e.g. `same-random-d1`
    eps: float | None = None  # the ε it is read at
    run: str = ""  # the run (target) it attacks, e.g. `pretraining__mobilenet_v2-random-d1`
    whitebox_auc: float | None = None  # the attacker's own AUC on its own adversarial images at `eps`
    attacker_clean_auc: float | None = None  # the attacker's own clean test AUC, what `whitebox_auc` is relative to
    epsilon_star: ArmEpsilon | None = None  # its ε* for relative AUC 0.8 on its run's grid (`arm_epsilon`)

    @property
    def transfers(self) -> bool:
        return math.isfinite(self.drop.low) and self.drop.low > 0

    @property
    def whitebox_relative(self) -> float | None:
        """White-box AUC over the attacker's clean AUC, the paper's bracketed relative performance."""
        if self.whitebox_auc is None or not self.attacker_clean_auc:
            return None
        return self.whitebox_auc / self.attacker_clean_auc


@dataclass(frozen=True)
class Comparison:
    """One check of a claim: a label, its paired interval and the arms it rests on, or why it cannot be tested."""

    label: str  # e.g. "Lite0 R, FGSM: d1 − d2"
    interval_at: IntervalAt | None  # None when blocked
    blockers: tuple[str, ...] = ()  # why it is not testable (empty: testable)
    # attackers on the target, the reference arm first: the one the finding says transfers more, which must beat its
    # own control (empty: no attacker, e.g. control noise)
    arms: tuple[Arm, ...] = ()
    eps: tuple[float, ...] = ()  # the ε each side is read at

    def status_by(self, set_aside: SetAside = REFERENCE_ARM) -> Status:
        if self.blockers or self.interval_at is None:
            return "not testable"
        needed = self.arms[:1] if set_aside == REFERENCE_ARM else self.arms
        return "judged" if all(a.transfers for a in needed) else "no transfer"

    @property
    def status(self) -> Status:
        return self.status_by(REFERENCE_ARM)

    @property
    def silent(self) -> tuple[Arm, ...]:
        """The arms besides the reference that do not beat their control: judged all the same."""
        return tuple(a for a in self.arms[1:] if not a.transfers)


@dataclass(frozen=True)
class Judged:
    """A comparison after the rule: its status, and for a judged one the interval Holm decided it on."""

    label: str
    status: Status
    interval: Interval | None
    decision: Decision | None
    blockers: tuple[str, ...]
    arms: tuple[Arm, ...]
    eps: tuple[float, ...] = ()
    silent: tuple[Arm, ...] = ()  # arms besides the reference that do not beat their control (judged all the same)


@dataclass(frozen=True)
class Assessment:
    outcome: FindingOutcome
    judged: tuple[Judged, ...]
    reasons: tuple[str, ...]  # distinct blockers of the not-testable comparisons
    outcome_any_arm: FindingOutcome  # the outcome had any silent arm set its comparison aside (`ANY_ARM`)

    @property
    def decided_by_silent_arms(self) -> list[Judged]:
        """The judged comparisons with a silent arm, where they change the outcome (empty where they do not)."""
        if self.outcome == self.outcome_any_arm:
            return []
        return [j for j in self.judged if j.status == "judged" and j.silent]

    def count(self, status: Status) -> int:
        return sum(j.status == status for j in self.judged)

    def decided(self, decision: Decision) -> list[Judged]:
        return [j for j in self.judged if j.decision == decision]


def decide(interval: Interval, claim: Claim) -> Decision:
    """Supports: the whole interval lies on the claimed side of the bound; contradicts: on the other side."""
    if not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return "undecided"
    below, above = interval.high < claim.bound, interval.low > claim.bound
    if not (below or above):
        return "undecided"
    return "supports" if below == (claim.side == "below") else "contradicts"


def holm(intervals_at: Sequence[IntervalAt], claim: Claim, family_confidence: float = FAMILY_CONFIDENCE):
    """Holm's step-down procedure on intervals: [(interval judged on, decision)] in input order. With m open,
    each is judged at confidence 1 - alpha/m; the decided leave, the rest are judged again, until a step decides
    nothing."""
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


def outcome(statuses: Sequence[Status], decisions: Sequence[Decision]) -> FindingOutcome:
    """The symmetric rule: see the module docstring."""
    if not decisions:
        return "no transfer to compare" if "no transfer" in statuses else "not testable"
    supports, contradicts = "supports" in decisions, "contradicts" in decisions
    if supports and contradicts:
        return "mixed"
    if supports:
        return "holds"
    if contradicts:
        return "does not hold"
    return "cannot be told apart"


def _judge(
    comparisons: Sequence[Comparison], claim: Claim, family_confidence: float, set_aside: SetAside
) -> tuple[tuple[Judged, ...], FindingOutcome]:
    statuses = [c.status_by(set_aside) for c in comparisons]
    judged_at = [i for i, s in enumerate(statuses) if s == "judged"]
    results = dict(zip(judged_at, holm([comparisons[i].interval_at for i in judged_at], claim, family_confidence)))
    out = tuple(
        Judged(c.label, s, *results.get(i, (None, None)), blockers=c.blockers, arms=c.arms, eps=c.eps, silent=c.silent)
        for i, (c, s) in enumerate(zip(comparisons, statuses))
    )
    return out, outcome(statuses, [j.decision for j in out if j.decision])


def assess(comparisons: Sequence[Comparison], claim: Claim, family_confidence: float = FAMILY_CONFIDENCE) -> Assessment:
    """Holm over the judged comparisons, then `outcome`; and the outcome under `ANY_ARM`, for comparison."""
    out, result = _judge(comparisons, claim, family_confidence, REFERENCE_ARM)
    _, any_arm = _judge(comparisons, claim, family_confidence, ANY_ARM)
    reasons = tuple(dict.fromkeys(b for c in comparisons for b in c.blockers))
    return Assessment(result, out, reasons, any_arm)


def signed(interval: Interval) -> str:
    """A difference and its interval as the document writes them: "+0.037 (+0.008, +0.073)"."""
    return f"{interval.point:+.3f} ({interval.low:+.3f}, {interval.high:+.3f})"


# ---------------------------------------------------------------- paired intervals from per-image scores
@dataclass(frozen=True)
class Scored:
    """One side of a comparison: the target's scores on the reference images and on the perturbed ones."""

    reference: np.ndarray  # (N,) e.g. clean scores
    perturbed: np.ndarray  # (N,) e.g. adversarial scores


def _cached(compute: Callable[[float], Interval]) -> IntervalAt:
    cache: dict[float, Interval] = {}

    def at(confidence: float) -> Interval:
        if confidence not in cache:
            cache[confidence] = compute(confidence)
        return cache[confidence]

    return at


def relative_difference(y: np.ndarray, groups: np.ndarray | None, a: Scored, b: Scored) -> IntervalAt:
    """d = AUC(a.perturbed)/AUC(a.reference) - AUC(b.perturbed)/AUC(b.reference), paired over the same images (or
    patients, with `groups`), as a function of the confidence."""
    return _cached(
        lambda confidence: (
            bootstrap_paired_difference(
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
        )
    )


def auc_difference(y: np.ndarray, groups: np.ndarray | None, a: np.ndarray, b: np.ndarray) -> IntervalAt:
    """d = AUC(a) - AUC(b) on the same images, e.g. clean - control (scores (N,))."""
    return _cached(
        lambda confidence: (
            bootstrap_paired_difference(
                y, a, a, b, b, resamples=VERDICT_RESAMPLES, confidence=confidence, seed=VERDICT_SEED, groups=groups
            ).auc_adversarial
        )
    )


def at_chance(clean_auc: Interval, what: str) -> tuple[str, ...]:
    """A target whose clean AUC interval reaches chance has nothing an attack could take away."""
    if clean_auc.low > CHANCE_AUC:
        return ()
    return (f"{what} at chance (clean AUC lower bound {clean_auc.low:.3f})",)


def premise(difference: Interval, what: str) -> tuple[str, ...]:
    """A conditional finding applies only where its condition holds: the difference is above 0 at 95 %."""
    if difference.low > 0:
        return ()
    return (f"premise unmet: {what} {signed(difference)}",)
