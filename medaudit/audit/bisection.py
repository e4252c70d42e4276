"""Measure epsilon* after the grid: rounds of bisection between the last epsilon that holds and the first that
breaks, for every attacker that may still set its tier's epsilon* (`judging.next_round`), each round's jobs run by
the run's executor like the grid's. A finished round is a cache entry, so a resumed audit replays it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from medaudit.audit.stored import StoredScores
from medaudit.core import ONE_GREY_LEVEL_PM1
from medaudit.engine import (
    Executed,
    Executor,
    Live,
    Plan,
    Reference,
    auc_labels,
    refine_job_for,
    refined_arrays,
)
from medaudit.judging import CellScores, Pair, Point, breaking_epsilons, next_round
from medaudit.records import BreakingEpsilon, SearchStop

MAX_ROUNDS = 8  # bisection rounds at most: a 3x grid bracket is within 10% after 4, a halving from 0 takes more


@dataclass(frozen=True)
class Bisected:
    """The bisection's measured points and the searches it closed, with what it cost."""

    points: dict[Pair, list[Point]]
    stops: dict[tuple[str, str, str], SearchStop]
    grey_level_pm1: float | None  # 8-bit delivery: one grey level, the bisection's smallest step
    target_queries: int
    jobs_computed: int
    jobs_cached: int
    seconds: float


def bisect(
    plan: Plan, executed: Executed, executor: Executor, lv: Live, ref: Reference, scores: StoredScores, progress
) -> Bisected:
    """Narrow every attacker's bracket that may set its tier's epsilon*, round by round; each round recomputes the
    breaking epsilons of the attackers it measured only (the others' stand, and `next_round` closes them again)."""
    started = time.perf_counter()
    ctx = plan.context
    sc, test = ctx.scenario, lv.data.test
    k = len(lv.target.card.class_names or ()) or 1
    y_auc = auc_labels(test.y, lv.data.task, k)
    groups = test.groups if lv.data.patient_level else None
    cells = tuple(c for o in executed.cells + executed.bounds for c in o.records)
    job_of = {(j.attacker_id, j.attack.id): j for j in plan.cells + plan.bounds}
    grey = ONE_GREY_LEVEL_PM1 if sc.delivery == "uint8" else None
    points: dict[Pair, list[Point]] = {}
    stops: dict[tuple[str, str, str], SearchStop] = {}
    outcomes = []
    latest: dict[tuple[str, str, str], BreakingEpsilon] = {}
    changed = cells
    for round_ in range(MAX_ROUNDS + 1):
        for b in breaking_epsilons(
            sc, changed, (), y_auc, ref.clean_scores, groups, scores, points=points, stops=stops, grey_level_pm1=grey
        ):
            latest[(b.attacker_id, b.attack_id, b.criterion_id)] = b
        wanted, closed = next_round(tuple(latest.values()), grey)
        stops.update(closed)
        if not wanted or round_ == MAX_ROUNDS:
            break
        jobs = [refine_job_for(job_of[pair], eps) for pair, eps in wanted.items()]
        changed = tuple(c for c in cells if (c.attacker_id, c.attack_id) in wanted)
        for outcome in executor.map(ctx, jobs, f"bisection {round_ + 1}", progress):
            outcomes.append(outcome)
            a = refined_arrays(ctx, outcome)
            points.setdefault((outcome.attacker_id, outcome.attack_id), []).extend(
                Point(float(e), CellScores(a.image_indices, a.adversarial_scores[i], a.control_scores[i]))
                for i, e in enumerate(np.asarray(a.epsilons_pm1))
            )
    return Bisected(
        points=points,
        stops=stops,
        grey_level_pm1=grey,
        target_queries=sum(o.target_queries for o in outcomes),
        jobs_computed=sum(not o.from_cache for o in outcomes),
        jobs_cached=sum(o.from_cache for o in outcomes),
        seconds=time.perf_counter() - started,
    )
