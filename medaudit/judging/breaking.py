"""epsilon* of every attacker, attack and stated criterion, from the grid's cells and the bisection's points, and
the bisection's next round: which attackers may still set their tier's epsilon*, and where to measure them.

An attacker is measured again only while its bracket starts below its tier's current epsilon* for that criterion
(the smallest over the tier's attackers and attacks): one whose criterion holds up to that epsilon cannot set it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from medaudit.core import bootstrap_curves
from medaudit.judging.breaking_epsilon import breaking_epsilon, midpoint, stop
from medaudit.judging.finalize import CellScores, ScoresOf
from medaudit.records import BreakingEpsilon, CellRecord, EpsilonChoice, MeasuredEpsilon, SearchStop, stated
from medaudit.scenario import Scenario

Pair = tuple[str, str]  # (attacker id, attack id)
Key = tuple[str, str, str]  # (attacker id, attack id, criterion id)
PRUNED: SearchStop = "another attacker breaks first"
OPEN: SearchStop = "round limit"  # what a search still open when the bisection ends records


@dataclass(frozen=True)
class Point:
    """One epsilon the bisection measured for an attacker and attack, with the target's scores there."""

    epsilon_pm1: float
    scores: CellScores


def breaking_epsilons(
    scenario: Scenario,
    cells: Sequence[CellRecord],
    choices: Sequence[EpsilonChoice],
    y_auc: np.ndarray,
    clean_scores: np.ndarray,
    groups: np.ndarray | None,
    scores_of: ScoresOf,
    *,
    points: Mapping[Pair, Sequence[Point]] | None = None,
    stops: Mapping[Key, SearchStop] | None = None,
    grey_level_pm1: float | None = None,
) -> tuple[BreakingEpsilon, ...]:
    """epsilon* of every attacker, attack and stated criterion from its cells and bisection `points`; `stops`
    closes searches the bisection ended, `grey_level_pm1` is one grey level under 8-bit delivery."""
    points, stops = points or {}, stops or {}
    criteria = stated(scenario.gate)
    choice = {c.attack_id: c for c in choices}
    groups_of: dict[Pair, list[CellRecord]] = {}
    for c in cells:
        groups_of.setdefault((c.attacker_id, c.attack_id), []).append(c)
    b = scenario.bootstrap
    out = []
    for (attacker_id, attack_id), mine in groups_of.items():
        measured = [(c.epsilon_pm1, scores_of(c), False) for c in mine]
        measured += [(p.epsilon_pm1, p.scores, True) for p in points.get((attacker_id, attack_id), ())]
        measured.sort(key=lambda m: m[0])
        index = measured[0][1].image_indices
        curves = bootstrap_curves(
            y_auc[index],
            clean_scores[index],
            [s.adversarial for _, s, _ in measured],
            [s.control for _, s, _ in measured],
            resamples=b.resamples,
            seed=scenario.seed,
            groups=groups[index] if groups is not None else None,
        )
        eps = np.array([e for e, _, _ in measured])
        c = choice.get(attack_id)
        for criterion, threshold in criteria:
            values = getattr(curves, criterion.cell_field)
            crossing = breaking_epsilon(
                eps,
                values,
                getattr(curves, f"resampled_{criterion.cell_field}"),
                threshold=threshold,
                at_least=criterion.at_least,
                start=criterion.clean_value,
                confidence=b.confidence,
            )
            key = (attacker_id, attack_id, criterion.id)
            out.append(
                BreakingEpsilon(
                    criterion_id=criterion.id,
                    attacker_id=attacker_id,
                    attack_id=attack_id,
                    tier=mine[0].tier,
                    epsilon_pm1=crossing.point,
                    holds_at_pm1=crossing.holds_at,
                    low_pm1=crossing.low,
                    high_pm1=crossing.high,
                    largest_tried_pm1=float(eps.max()),
                    measured=tuple(
                        MeasuredEpsilon(
                            epsilon_pm1=float(e),
                            value=None if np.isnan(v) else float(v),
                            holds=bool(v >= threshold if criterion.at_least else v <= threshold),
                            bisection=by_bisection,
                        )
                        for (e, _, by_bisection), v in zip(measured, values)
                    ),
                    search=stops.get(key) or stop(crossing, grey_level_pm1) or OPEN,
                    one_grey_level_pm1=grey_level_pm1,
                    bound_epsilon_pm1=c.bound_epsilon_pm1 if c else None,
                    near_invisible_epsilon_pm1=c.near_invisible_epsilon_pm1 if c else None,
                )
            )
    return tuple(out)


def next_round(
    breaking: Sequence[BreakingEpsilon], grey_level_pm1: float | None
) -> tuple[dict[Pair, tuple[float, ...]], dict[Key, SearchStop]]:
    """The bisection's next round: per attacker and attack, the epsilons to measure (every criterion's midpoint,
    once each), and the open searches it closes because another attacker breaks their tier's criterion first."""
    first: dict[tuple[str, str], float] = {}  # (tier, criterion) -> its epsilon* so far
    for b in breaking:
        if b.epsilon_pm1 is not None:
            at = (b.tier, b.criterion_id)
            first[at] = min(first.get(at, b.epsilon_pm1), b.epsilon_pm1)
    wanted: dict[Pair, set[float]] = {}
    closed: dict[Key, SearchStop] = {}
    for b in breaking:
        if b.search != OPEN:
            continue
        if b.holds_at_pm1 >= first[(b.tier, b.criterion_id)]:
            closed[(b.attacker_id, b.attack_id, b.criterion_id)] = PRUNED
            continue
        m = midpoint(b.holds_at_pm1, b.epsilon_pm1, grey_level_pm1)
        wanted.setdefault((b.attacker_id, b.attack_id), set()).add(float(m))
    return {pair: tuple(sorted(e)) for pair, e in wanted.items()}, closed
