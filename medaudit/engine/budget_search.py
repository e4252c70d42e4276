"""`epsilons_pm1: auto`: per attack, find where the perceptibility bound binds, and place the grid around it.

Mean SSIM falls as epsilon grows, so the bound's epsilon is found by bracketing and interpolation on a few test
images, with the attack itself (its `searched()` variant) on the first surrogate, or on the target for the bound
tiers. SSIM need not fall monotonically (an attack's iterations may not use the whole ball); the search only places
the grid: each epsilon's admissibility is decided afterwards on the SSIM measured over all images in its cells,
and a search that met a rise says so in its record. The grid is the attack's `auto_fractions` of the epsilon
found, so every attack is measured below, at and beyond its own bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from medaudit.attacks import Crafting
from medaudit.core import ONE_GREY_LEVEL_PM1, Cache, deliver_uint8, mean_ssim
from medaudit.engine.inputs import live
from medaudit.engine.plan import RunContext, SearchJob, n_logits
from medaudit.engine.victims import victim
from medaudit.records import EpsilonSearch, Record, SearchStep
from medaudit.target import TargetQueries

FIRST_BRACKET_PM1 = 0.05  # the first upper end tried; doubled until SSIM falls below the bound
MAX_EPSILON_PM1 = 1.0  # the largest epsilon there is on [-1, 1] images
RELATIVE_PRECISION = 0.05  # the search stops when the bracket is narrower than this share of its upper end
MAX_STEPS = 12  # interpolation steps at most
GRID_DIGITS = 3  # significant digits of a grid epsilon
MONOTONE_SLACK = 1e-4  # a rise in SSIM smaller than this is noise, not a rise


class SearchOutcome(Record):
    """One attack's epsilon search, or why its tier could not run."""

    job_id: str
    attack_id: str
    search: EpsilonSearch | None  # None: the tier could not run on this target
    reason: str  # why not (empty when it ran)
    target_queries: int  # images the search sent to the target (query tier; the white-box check)
    from_cache: bool


def largest_within(ssim_at: Callable[[float], float], bound: float, ceiling: float = MAX_EPSILON_PM1) -> float | None:
    """The largest epsilon found with `ssim_at(epsilon) >= bound`: an upper bracket doubled from FIRST_BRACKET_PM1,
    then bracketed linear interpolation (regula falsi, Illinois variant: SSIM falls smoothly with epsilon, so a few
    evaluations suffice) until the bracket is RELATIVE_PRECISION of its upper end; None when the bound still holds
    at `ceiling` (the largest epsilon there is, or the most the attack can move a pixel). SSIM is 1 at epsilon 0."""
    low, high = 0.0, min(FIRST_BRACKET_PM1, ceiling)
    f_low, f_high = 1.0 - bound, ssim_at(high) - bound  # >= 0: the bound holds
    while f_high >= 0:
        if high >= ceiling:
            return None
        low, f_low = high, f_high
        high = min(ceiling, 2 * high)
        f_high = ssim_at(high) - bound
    side = 0  # which end moved last (Illinois: halve the other end's weight when one end keeps moving)
    for _ in range(MAX_STEPS):
        if high - low <= RELATIVE_PRECISION * high:
            break
        middle = high - f_high * (high - low) / (f_high - f_low)
        middle = min(max(middle, low + 0.01 * (high - low)), high - 0.01 * (high - low))  # stay inside
        f_mid = ssim_at(middle) - bound
        if f_mid >= 0:
            low, f_low = middle, f_mid
            f_high = f_high / 2 if side == -1 else f_high
            side = -1
        else:
            high, f_high = middle, f_mid
            f_low = f_low / 2 if side == 1 else f_low
            side = 1
    return low if low > 0 else high  # below every epsilon tried: the cells will show nothing is admissible


def grid(
    bound_epsilon_pm1: float | None, fractions: tuple[float, ...], ceiling: float, step_pm1: float | None = None
) -> tuple[float, ...]:
    """The attack's fractions of the bound's epsilon (of `ceiling` when the bound never binds below it), to
    GRID_DIGITS significant digits, never past `ceiling` (the most the attack can move a pixel). With `step_pm1`
    (one grey level, for 8-bit delivery) every epsilon is a whole number of steps, the first at least one: a
    rounded file carries no smaller change, and none larger than its epsilon."""
    base = bound_epsilon_pm1 if bound_epsilon_pm1 is not None else ceiling
    raw = [min(ceiling, f * base) for f in fractions]
    if step_pm1 is not None:
        most = max(1, math.floor(ceiling / step_pm1 + 1e-9))
        raw = [step_pm1 * min(most, max(1, round(v / step_pm1))) for v in raw]
    values = {float(f"{v:.{GRID_DIGITS}g}") if step_pm1 is None else v for v in raw}
    return tuple(sorted(v for v in values if v > 0))


def monotone(steps: tuple[SearchStep, ...]) -> bool:
    ordered = sorted(steps, key=lambda s: s.epsilon_pm1)
    return all(b.mean_ssim <= a.mean_ssim + MONOTONE_SLACK for a, b in zip(ordered, ordered[1:]))


def search_job(ctx: RunContext, job: SearchJob) -> SearchOutcome:
    """Run (or read from the cache) one attack's epsilon search."""
    cache = Cache(ctx.cache_dir)
    stored = cache.load_record("search", job.key)
    if stored is not None:
        return SearchOutcome.model_validate_json(stored).model_copy(update={"from_cache": True})
    lv = live(ctx)
    sc, test = ctx.scenario, lv.data.test
    index = np.asarray(job.images)
    x, y = test.x[index], test.y[index]
    queries = TargetQueries(lv.target)
    attacked = victim(ctx, job.attack.tier, queries, x, (job.reference,) if job.reference else ())
    search = None
    if attacked.model is not None:
        how = Crafting(
            n_logits=n_logits(lv.data.task, len(lv.target.card.class_names or ()) or 1),
            multilabel=lv.data.task == "multilabel",
            batch_size=ctx.batch_size,
            seed=sc.seed,
            device=ctx.device,
        )
        attack, steps = job.attack.searched(), {}

        def ssim_at(eps: float) -> float:
            if eps not in steps:
                x_adv = attack.craft(attacked.model, x, y, (eps,), how)[eps].x_adv
                steps[eps] = mean_ssim(x, deliver_uint8(x_adv) if sc.delivery == "uint8" else x_adv)
            return steps[eps]

        ceiling = min(MAX_EPSILON_PM1, job.attack.reach_pm1 or MAX_EPSILON_PM1)
        bound = largest_within(ssim_at, sc.perceptibility.min_mean_ssim, ceiling)
        # the near-invisible epsilon lies below the bound's: search up to it, reusing what was measured
        invisible = largest_within(ssim_at, sc.perceptibility.near_invisible_ssim, bound or ceiling)
        tried = tuple(SearchStep(epsilon_pm1=e, mean_ssim=v) for e, v in steps.items())
        search = EpsilonSearch(
            attack_id=job.attack.id,
            attacker=job.reference_id,
            n_images=len(index),
            steps=tried,
            ceiling_pm1=ceiling,
            bound_epsilon_pm1=bound,
            near_invisible_epsilon_pm1=invisible,
            monotone=monotone(tried),
            epsilons_pm1=grid(
                bound, type(job.attack).auto_fractions, ceiling, ONE_GREY_LEVEL_PM1 if sc.delivery == "uint8" else None
            ),
        )
    outcome = SearchOutcome(
        job_id=job.id,
        attack_id=job.attack.id,
        search=search,
        reason="" if search else attacked.note,
        target_queries=queries.images,
        from_cache=False,
    )
    cache.store("search", job.key, outcome.model_dump_json())
    return outcome
