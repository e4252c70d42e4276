"""One round of the epsilon* bisection for one attacker and attack: its attack crafted again at the round's epsilons
(every one in one batched pass, as on the grid), measured on the target like a cell; cached under a key of the
grid job and the epsilons, so a resumed audit replays finished rounds from the cache.

The images are those of the grid job (every test image for a transfer attacker, the tier's subset for a bound),
crafted with the same seed: a point the grid had measured would come out bit for bit as it did there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from medaudit.core import Cache, content_key
from medaudit.engine.inputs import live
from medaudit.engine.measure import CellArrays, craft_on_target, crafting, measure_cell
from medaudit.engine.plan import BoundJob, CellJob, RunContext
from medaudit.engine.victims import surrogates, victim
from medaudit.records import CellRecord, Record
from medaudit.target import TargetQueries


@dataclass(frozen=True)
class RefineJob:
    """Measure one grid job's attacker again at the bisection's epsilons."""

    id: str  # `bisect/<grid job id>/<epsilons>`
    source: CellJob | BoundJob
    epsilons_pm1: tuple[float, ...]
    key: str

    kind = "refine"


class RefineOutcome(Record):
    """A bisection round's records (one per epsilon, not cells of the grid); its scores stay in the cache."""

    job_id: str
    attacker_id: str
    attack_id: str
    key: str
    records: tuple[CellRecord, ...]
    target_queries: int  # what crafting (query tier) and scoring these epsilons sent to the target
    from_cache: bool


def refine_job_for(source: CellJob | BoundJob, epsilons_pm1: tuple[float, ...]) -> RefineJob:
    eps = tuple(sorted(float(e) for e in epsilons_pm1))
    return RefineJob(
        id=f"bisect/{source.id}/" + ",".join(f"{e:.6g}" for e in eps),
        source=source,
        epsilons_pm1=eps,
        key=content_key("refine", {"job": source.key, "epsilons_pm1": eps}),
    )


def refine_job(ctx: RunContext, job: RefineJob) -> RefineOutcome:
    """Craft and measure the source job's attacker at the job's epsilons; cached."""
    cache = Cache(ctx.cache_dir)
    stored = cache.load_record("refine", job.key)
    if stored is not None:
        return RefineOutcome.model_validate_json(stored).model_copy(update={"from_cache": True})
    torch.set_num_threads(ctx.torch_threads)
    src, test = job.source, live(ctx).data.test
    queries = TargetQueries(live(ctx).target)
    crafting_queries: dict[float, int] = {}
    if isinstance(src, CellJob):
        index = np.arange(len(test))
        crafted = src.attack.craft(surrogates(ctx, src.members), test.x, test.y, job.epsilons_pm1, crafting(ctx))
        adversarial = {eps: crafted[eps].x_adv for eps in job.epsilons_pm1}
    else:
        index = np.asarray(src.images) if src.images is not None else np.arange(len(test))
        attacked = victim(ctx, src.tier, queries, test.x[index])
        x, y = test.x[index], test.y[index]
        adversarial, crafting_queries = craft_on_target(ctx, src, attacked.model, x, y, job.epsilons_pm1, queries)
    records, arrays = measure_cell(ctx, src, index, adversarial, None, queries, crafting_queries)
    outcome = RefineOutcome(
        job_id=job.id,
        attacker_id=src.attacker_id,
        attack_id=src.attack.id,
        key=job.key,
        records=records,
        target_queries=queries.images,
        from_cache=False,
    )
    cache.store("refine", job.key, outcome.model_dump_json(), arrays.as_arrays())
    return outcome


def refined_arrays(ctx: RunContext, outcome: RefineOutcome) -> CellArrays:
    return CellArrays.load(Cache(ctx.cache_dir), "refine", outcome.key)
