"""What one job computes: train a surrogate, search an attack's epsilons, or measure one attacker on the target.

A job function is pure given its job and the run context: it rebuilds the target and data (`inputs.live`),
looks its key up in the cache and computes only what is missing. A cell is measured the same way in every
tier: the attack's images at each epsilon, the control (the same perturbation shuffled), the target's scores on
both, clean / adversarial / control AUC with paired bootstrap intervals, decisions at the clinical threshold,
SSIM, and the few images whose decision flipped the harmful way (the report's examples).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from medaudit.attackers import SurrogateRecord, predict_scores
from medaudit.attacks import Crafting, LogitEnsemble, control_noise
from medaudit.core import (
    CHANGE_COUNTS,
    GREY_LEVELS_PER_PM1,
    Cache,
    auc,
    bootstrap_mean_drop,
    bootstrap_paired_auc,
    decision_changes,
    deliver_uint8,
    harmful_flips,
    mean_ssim,
    per_class_auc,
    sensitivity_at_threshold,
    specificity_at_threshold,
)
from medaudit.data import stratified_subset
from medaudit.engine.bound_checks import CHECK_IMAGES, whitebox_checks
from medaudit.engine.budget_search import SearchOutcome
from medaudit.engine.inputs import live
from medaudit.engine.plan import BoundJob, CellJob, Grid, RunContext, SurrogateJob, n_logits
from medaudit.engine.reference import Reference, load_reference
from medaudit.engine.victims import surrogates, trained, victim
from medaudit.records import (
    BoundCheck,
    CellRecord,
    IntervalRecord,
    OperatingPoint,
    Record,
    TierStatus,
    TransferCheck,
)
from medaudit.target import TargetQueries

EXAMPLES_PER_CELL = 3  # harmful flips kept per cell and epsilon, the largest score changes first


@dataclass(frozen=True)
class CellArrays:
    """A cell job's per-image arrays, by name: scores at every epsilon and its harmful-flip examples."""

    epsilons_pm1: np.ndarray  # (E,)
    image_indices: np.ndarray  # (M,) the test images measured (a bound tier's subset), indices into the test set
    adversarial_scores: np.ndarray  # (E, M) or (E, M, K): the target's scores on the adversarial images
    control_scores: np.ndarray  # (E, M) or (E, M, K): ... on the control images
    example_indices: np.ndarray  # (E, EXAMPLES_PER_CELL) test-set indices of harmful flips, -1 where fewer
    example_images: np.ndarray  # (E, EXAMPLES_PER_CELL, C, H, W) their adversarial images (zeros where none)

    def at(self, epsilon_pm1: float) -> int:
        return int(np.argmin(np.abs(self.epsilons_pm1 - epsilon_pm1)))

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def load(cls, cache: Cache, kind: str, key: str) -> "CellArrays":
        return cls(**cache.load_arrays(kind, key))


class AttackerCheck(Record):
    """What a transfer cell measures on the attacker itself, not on the target: cached under the job's
    `attacker_key`, so audits of several targets with the same surrogates measure it once."""

    surrogate_auc_clean: IntervalRecord  # the attacker's clean test AUC with its bootstrap interval
    whitebox_auc: tuple[float, ...]  # per epsilon (the grid's order): its AUC on its own adversarial images
    transfer: tuple[TransferCheck | None, ...]  # per epsilon: on its row's models outside it (None: there are none)


class CellOutcome(Record):
    """One cell or bound job's records (one per epsilon); its per-image arrays stay in the cache under `key`."""

    job_id: str
    kind: str  # "cell" (transfer) or "bound"
    key: str
    records: tuple[CellRecord, ...]
    status: TierStatus | None  # bound tiers: ran, or why not
    from_cache: bool


class SurrogateOutcome(Record):
    job_id: str
    record: SurrogateRecord


# ---------------------------------------------------------------- shared measurement
def crafting(ctx: RunContext) -> Crafting:
    lv = live(ctx)
    return Crafting(
        n_logits=n_logits(lv.data.task, len(lv.target.card.class_names or ()) or 1),
        multilabel=lv.data.task == "multilabel",
        batch_size=ctx.batch_size,
        seed=ctx.scenario.seed,
        device=ctx.device,
    )


def epsilons(ctx: RunContext, grid: Grid) -> tuple[tuple[float, ...], str]:
    """The grid a job measures, and why it is empty when its search found its tier unavailable."""
    if grid.epsilons_pm1 is not None:
        return grid.epsilons_pm1, ""
    outcome = SearchOutcome.model_validate_json(Cache(ctx.cache_dir).load_record("search", grid.search_key))
    return (outcome.search.epsilons_pm1, "") if outcome.search else ((), outcome.reason)


def auc_labels(y: np.ndarray, task: str, k: int) -> np.ndarray:
    """Labels in the form `metrics.auc` takes: one-hot for multiclass, as they are otherwise."""
    return np.eye(k, dtype=np.int64)[y] if task == "multiclass" else y


def _delivered(ctx: RunContext, x: np.ndarray) -> np.ndarray:
    return deliver_uint8(x) if ctx.scenario.delivery == "uint8" else x


def _operating_point(y, clean, adv, ctrl, ref: Reference) -> OperatingPoint:
    t = ref.threshold
    lost_adv, lost_ctrl = decision_changes(y, clean, adv, t), decision_changes(y, clean, ctrl, t)
    return OperatingPoint(
        threshold=t,
        threshold_rule=ref.threshold_rule,
        sensitivity_clean=sensitivity_at_threshold(y, clean, t),
        specificity_clean=specificity_at_threshold(y, clean, t),
        sensitivity_adversarial=sensitivity_at_threshold(y, adv, t),
        specificity_adversarial=specificity_at_threshold(y, adv, t),
        sensitivity_control=sensitivity_at_threshold(y, ctrl, t),
        specificity_control=specificity_at_threshold(y, ctrl, t),
        positives=int(np.sum(y == 1)),
        negatives=int(np.sum(y == 0)),
        **{k: getattr(lost_adv, k) for k in CHANGE_COUNTS},
        **{f"{k}_control": getattr(lost_ctrl, k) for k in CHANGE_COUNTS},
        decision_flips=lost_adv.flips,
        decision_flips_control=lost_ctrl.flips,
    )


def measure_cell(
    ctx: RunContext,
    job: CellJob | BoundJob,
    index: np.ndarray,
    adversarial: dict[float, np.ndarray],
    check: AttackerCheck | None,
    queries: TargetQueries,
    crafting_queries: dict[float, int],
) -> tuple[tuple[CellRecord, ...], CellArrays]:
    """The job's records and arrays: the target on each epsilon's adversarial and control images of `index`
    (`crafting_queries`: what crafting each epsilon's images sent to the target, counted in its cell)."""
    lv, ref = live(ctx), load_reference(ctx, job.reference_key)
    sc, data, test = ctx.scenario, lv.data, lv.data.test
    k = len(lv.target.card.class_names or ()) or 1
    x, y, clean = test.x[index], test.y[index], ref.clean_scores[index]
    y_auc = auc_labels(y, data.task, k)
    groups = test.groups[index] if data.patient_level else None
    records, adv_all, ctrl_all, ex_index, ex_images = [], [], [], [], []
    for i, eps in enumerate(adversarial):
        x_adv = _delivered(ctx, adversarial[eps])
        x_ctrl = _delivered(ctx, control_noise(x, adversarial[eps], seed=sc.seed))
        before = queries.images
        adv, ctrl = queries.scores(x_adv), queries.scores(x_ctrl)
        paired = bootstrap_paired_auc(
            y_auc,
            clean,
            adv,
            ctrl,
            resamples=sc.bootstrap.resamples,
            confidence=sc.bootstrap.confidence,
            seed=sc.seed,
            groups=groups,
        )
        binary = data.task == "binary"
        flips = harmful_flips(y, clean, adv, ref.threshold)[:EXAMPLES_PER_CELL] if binary else np.zeros(0, int)
        records.append(
            CellRecord(
                id=job.cell_id(eps),
                tier=job.tier,
                attacker_id=job.attacker_id,
                member_ids=getattr(job, "member_ids", ()),
                row_id=job.row_id,
                attack_id=job.attack.id,
                attack=job.attack,
                epsilon_pm1=eps,
                epsilon_grey_levels=eps * GREY_LEVELS_PER_PM1,
                n_images=len(index),
                auc_clean=IntervalRecord.of(paired.clean),
                auc_adversarial=IntervalRecord.of(paired.adversarial),
                auc_control=IntervalRecord.of(paired.control),
                relative_auc=IntervalRecord.of(paired.relative),
                relative_auc_control=IntervalRecord.of(paired.relative_control),
                adversarial_specific_drop=IntervalRecord.of(paired.adversarial_specific_drop),
                per_class_auc_clean=tuple(per_class_auc(y_auc, clean)),
                per_class_auc_adversarial=tuple(per_class_auc(y_auc, adv)),
                surrogate_auc_clean=check.surrogate_auc_clean if check else None,
                surrogate_auc_whitebox=check.whitebox_auc[i] if check else None,
                transfer=check.transfer[i] if check else None,
                operating_point=_operating_point(y, clean, adv, ctrl, ref) if binary else None,
                mean_ssim=mean_ssim(x, x_adv),
                mean_ssim_control=mean_ssim(x, x_ctrl),
                max_abs_delta_pm1=float(np.max(np.abs(x_adv - x))),
                target_queries=queries.images - before + crafting_queries.get(eps, 0),
            )
        )
        adv_all.append(adv)
        ctrl_all.append(ctrl)
        padded = np.full(EXAMPLES_PER_CELL, -1)
        padded[: len(flips)] = index[flips]
        images = np.zeros((EXAMPLES_PER_CELL,) + x.shape[1:], np.float32)
        images[: len(flips)] = x_adv[flips]
        ex_index.append(padded)
        ex_images.append(images)
    arrays = CellArrays(
        epsilons_pm1=np.array(list(adversarial), np.float64),
        image_indices=index,
        adversarial_scores=np.stack(adv_all) if adv_all else np.zeros((0, len(index))),
        control_scores=np.stack(ctrl_all) if ctrl_all else np.zeros((0, len(index))),
        example_indices=np.stack(ex_index) if ex_index else np.zeros((0, EXAMPLES_PER_CELL), int),
        example_images=np.stack(ex_images) if ex_images else np.zeros((0, EXAMPLES_PER_CELL) + x.shape[1:]),
    )
    return tuple(records), arrays


# ---------------------------------------------------------------- the job functions
def train_job(ctx: RunContext, job: SurrogateJob) -> SurrogateOutcome:
    """Train the surrogate, or load it from the cache."""
    torch.set_num_threads(ctx.torch_threads)
    return SurrogateOutcome(job_id=job.id, record=trained(ctx, job.spec))


def cell_job(ctx: RunContext, job: CellJob) -> CellOutcome:
    """Attack with the job's surrogate(s) at every epsilon of its grid, score the target, measure; cached."""
    cache = Cache(ctx.cache_dir)
    stored = cache.load_record("cell", job.key)
    if stored is not None:
        return CellOutcome.model_validate_json(stored).model_copy(update={"from_cache": True})
    torch.set_num_threads(ctx.torch_threads)
    grid, _ = epsilons(ctx, job.grid)
    adversarial, check = _attacker(ctx, job, grid)
    queries = TargetQueries(live(ctx).target)
    records, arrays = measure_cell(ctx, job, np.arange(len(live(ctx).data.test)), adversarial, check, queries, {})
    outcome = CellOutcome(job_id=job.id, kind="cell", key=job.key, records=records, status=None, from_cache=False)
    cache.store("cell", job.key, outcome.model_dump_json(), arrays.as_arrays())
    return outcome


def _attacker(ctx: RunContext, job: CellJob, grid: tuple[float, ...]) -> tuple[dict, AttackerCheck]:
    """The job's adversarial images and the attacker's own checks, each from the cache where it is there.
    Neither depends on the target; the surrogates are loaded only when something is missing."""
    cache = Cache(ctx.cache_dir)
    stored = cache.load_record("attacker", job.attacker_key)
    if stored is not None and cache.has("adversarial", job.adversarial_key):
        saved = cache.load_arrays("adversarial", job.adversarial_key)
        return {eps: saved[f"eps{eps:g}"] for eps in grid}, AttackerCheck.model_validate_json(stored)
    lv = live(ctx)
    sc, task, test = ctx.scenario, lv.data.task, lv.data.test
    models = surrogates(ctx, job.members)
    crafted = job.attack.craft(models, test.x, test.y, grid, crafting(ctx))
    adversarial = {eps: crafted[eps].x_adv for eps in grid}
    cache.store("adversarial", job.adversarial_key, "{}", {f"eps{eps:g}": adversarial[eps] for eps in grid})
    if stored is not None:
        return adversarial, AttackerCheck.model_validate_json(stored)
    k = len(lv.target.card.class_names or ()) or 1
    y_auc = auc_labels(test.y, task, k)
    groups = test.groups if lv.data.patient_level else None
    ensemble = models[0] if len(models) == 1 else LogitEnsemble(models).eval()
    others = surrogates(ctx, job.others)
    others_clean = [auc(y_auc, predict_scores(m, test.x, task, ctx.device)) for m in others]
    whitebox, transfer = [], []
    for eps in grid:
        x_adv = _delivered(ctx, adversarial[eps])
        x_ctrl = _delivered(ctx, control_noise(test.x, adversarial[eps], seed=sc.seed))
        whitebox.append(auc(y_auc, predict_scores(ensemble, x_adv, task, ctx.device)))
        transfer.append(_transfer(ctx, job, others, others_clean, x_adv, x_ctrl, y_auc, groups) if others else None)
    own = predict_scores(ensemble, test.x, task, ctx.device)
    b = sc.bootstrap
    interval = bootstrap_paired_auc(
        y_auc, own, own, own, resamples=b.resamples, confidence=b.confidence, seed=sc.seed, groups=groups
    )
    check = AttackerCheck(
        surrogate_auc_clean=IntervalRecord.of(interval.clean), whitebox_auc=tuple(whitebox), transfer=tuple(transfer)
    )
    cache.store("attacker", job.attacker_key, check.model_dump_json())
    return adversarial, check


def _transfer(ctx, job: CellJob, others, others_clean, x_adv, x_ctrl, y_auc, groups) -> TransferCheck:
    """The row's models outside the attacker (`others`, their clean AUCs `others_clean`) on its adversarial and
    control images."""
    task, b = live(ctx).data.task, ctx.scenario.bootstrap
    adv = [predict_scores(m, x_adv, task, ctx.device) for m in others]
    ctrl = [predict_scores(m, x_ctrl, task, ctx.device) for m in others]
    drop = bootstrap_mean_drop(
        y_auc, ctrl, adv, resamples=b.resamples, confidence=b.confidence, seed=ctx.scenario.seed, groups=groups
    )
    return TransferCheck(
        model_ids=job.other_ids,
        auc_adversarial=float(np.mean([auc(y_auc, a) for a in adv])),
        relative_auc=float(np.mean([auc(y_auc, a) / c for a, c in zip(adv, others_clean)])),
        drop_beyond_control=IntervalRecord.of(drop),
    )


def bound_job(ctx: RunContext, job: BoundJob) -> CellOutcome:
    """A query or white-box attack on the target itself at every epsilon of its grid; cached."""
    cache = Cache(ctx.cache_dir)
    stored = cache.load_record("bound", job.key)
    if stored is not None:
        return CellOutcome.model_validate_json(stored).model_copy(update={"from_cache": True})
    torch.set_num_threads(ctx.torch_threads)
    started = time.perf_counter()
    lv = live(ctx)
    test = lv.data.test
    index = np.asarray(job.images) if job.images is not None else np.arange(len(test))
    queries = TargetQueries(lv.target)
    grid, unavailable = epsilons(ctx, job.grid)
    attacked = victim(ctx, job.tier, queries, test.x[index]) if grid else None
    if attacked is None or attacked.model is None:
        reason = unavailable or attacked.note
        unavailable = dict(tier=job.tier, available=False, reason=reason, images=0, target_queries=queries.images)
        status = TierStatus(**unavailable, seconds=0.0, checks=())
        outcome = CellOutcome(job_id=job.id, kind="bound", key=job.key, records=(), status=status, from_cache=False)
        cache.store("bound", job.key, outcome.model_dump_json())
        return outcome
    x, y = test.x[index], test.y[index]
    adversarial, crafting_queries = craft_on_target(ctx, job, attacked.model, x, y, grid, queries)
    records, arrays = measure_cell(ctx, job, index, adversarial, None, queries, crafting_queries)
    checks = _whitebox_checks(ctx, job, attacked.model, index, adversarial, records, queries)
    status = TierStatus(
        tier=job.tier,
        available=True,
        reason=attacked.note,
        images=len(index),
        target_queries=queries.images,
        seconds=time.perf_counter() - started,
        checks=checks,
    )
    outcome = CellOutcome(job_id=job.id, kind="bound", key=job.key, records=records, status=status, from_cache=False)
    cache.store("bound", job.key, outcome.model_dump_json(), arrays.as_arrays())
    return outcome


def craft_on_target(ctx, job: BoundJob, model, x, y, grid, queries: TargetQueries) -> tuple[dict, dict[float, int]]:
    """Adversarial images per epsilon and the queries crafting each cost: the white-box tier (no queries) crafts
    its grid in one batched pass; the query tier one epsilon at a time, so each cell counts its own queries."""
    if job.tier != "query":
        return {eps: p.x_adv for eps, p in job.attack.craft(model, x, y, grid, crafting(ctx)).items()}, {}
    adversarial, crafting_queries = {}, {}
    for eps in grid:
        before = queries.images
        adversarial[eps] = job.attack.craft(model, x, y, (eps,), crafting(ctx))[eps].x_adv
        crafting_queries[eps] = queries.images - before
    return adversarial, crafting_queries


def _whitebox_checks(ctx, job: BoundJob, model, index, adversarial, records, queries) -> tuple[BoundCheck, ...]:
    """Convergence and reach of the white-box attack on a stratified subset of its images (`bound_checks`); () for
    the query tier. Convergence is checked at the largest epsilon the perceptibility bound admits (the grid's
    largest without one) and, where it is another, at the admissible epsilon whose AUC lies nearest halfway from
    clean to chance: undefended targets are at AUC 0 long before the bound, where no attack can do better."""
    if job.tier != "whitebox" or not records:
        return ()
    lv, sc = live(ctx), ctx.scenario
    bound = sc.perceptibility.min_mean_ssim if sc.perceptibility else None
    admissible = [r for r in records if bound is None or r.mean_ssim >= bound] or [records[0]]
    largest = max(admissible, key=lambda r: r.epsilon_pm1)
    middle = min(admissible, key=lambda r: abs(r.auc_adversarial.point - (r.auc_clean.point + 0.5) / 2))
    local = stratified_subset(lv.data.test.y[index], min(CHECK_IMAGES, len(index)), sc.seed)
    x, y = lv.data.test.x[index][local], lv.data.test.y[index][local]
    y_auc = auc_labels(y, lv.data.task, len(lv.target.card.class_names or ()) or 1)

    def target_auc(images: np.ndarray) -> float:
        return auc(y_auc, queries.scores(_delivered(ctx, images)))

    at = tuple(sorted({middle.epsilon_pm1, largest.epsilon_pm1}))
    crafted = {eps: adversarial[eps][local] for eps in at}
    return whitebox_checks(job.attack, model, x, y, crafted, crafting(ctx), target_auc)
