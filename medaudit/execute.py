"""Execute: run a plan's jobs and store their records in the shared cache.

A job function is pure given its job and the run context: it rebuilds the target and data with
`plan.live`, looks its key up in the cache, and computes only what is missing. Executors only decide
where the functions run: `local` loops in this process, `ray` submits the same functions as Ray tasks
(requesting a GPU when the device is cuda), so both give the same records bit for bit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from medaudit.attacks import LogitEnsemble, control_noise, craft_adversarial
from medaudit.cache import Cache
from medaudit.data import GREY_LEVELS_PER_PM1, Images
from medaudit.metrics import (
    auc,
    bootstrap_paired_auc,
    decision_changes,
    mean_ssim,
    per_class_auc,
    sensitivity_at_threshold,
    specificity_at_threshold,
    threshold_at_specificity,
)
from medaudit.plan import CellJob, Plan, RunContext, SurrogateJob, live, n_logits
from medaudit.results import CellRecord, IntervalRecord, OperatingPoint
from medaudit.surrogates import SurrogateRecord, load_surrogate, predict_scores, train_surrogate

EXAMPLES_PER_CELL = 3


@dataclass(frozen=True)
class SurrogateOutcome:
    """A trained surrogate (its clean test AUC is measured by its cells, on the same resamples)."""

    job_id: str
    record: SurrogateRecord


@dataclass(frozen=True)
class CellOutcome:
    """One cell job's records (one per epsilon); its per-image arrays stay in the cache under `key`."""

    job_id: str
    key: str
    records: tuple[CellRecord, ...]
    from_cache: bool


class AttackerCheck(BaseModel):
    """What a cell measures on the attacker itself, not on the target: cached under the job's `attacker_key`,
    so audits of several targets with the same surrogates (a reproduction's grid) measure it once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    surrogate_auc_clean: IntervalRecord  # the attacker's clean test AUC with its bootstrap interval
    whitebox_auc: tuple[float, ...]  # per epsilon (the job's order): its AUC on its own adversarial images
    sibling_relative_auc: tuple[float | None, ...]  # per epsilon: mean adversarial/clean AUC of the row's
    # other seeds on those images; None for an attacker without siblings (an ensemble, a one-seed row)


def auc_labels(y: np.ndarray, task: str, k: int) -> np.ndarray:
    """Labels in the form `metrics.auc` takes: one-hot for multiclass, as they are otherwise."""
    return np.eye(k, dtype=np.int64)[y] if task == "multiclass" else y


def example_indices(y: np.ndarray) -> np.ndarray:
    """A few fixed test images for the report: the first positives (not cherry-picked by effect)."""
    key = y if y.ndim == 1 else y.max(axis=1)
    pos = np.flatnonzero(key > 0)
    return pos[:EXAMPLES_PER_CELL] if len(pos) >= EXAMPLES_PER_CELL else np.arange(min(EXAMPLES_PER_CELL, len(y)))


def _classes(ctx: RunContext) -> int:
    target = live(ctx).target
    return len(target.card.class_names or ()) or 1


def _bootstrap_auc(ctx: RunContext, y_auc: np.ndarray, scores: np.ndarray, groups: np.ndarray | None) -> IntervalRecord:
    b = ctx.scenario.bootstrap
    paired = bootstrap_paired_auc(
        y_auc,
        scores,
        scores,
        scores,
        resamples=b.resamples,
        confidence=b.confidence,
        seed=ctx.scenario.seed,
        groups=groups,
    )
    return IntervalRecord.of(paired.clean)


# ---------------------------------------------------------------- the two job functions
def run_surrogate_job(ctx: RunContext, job: SurrogateJob) -> SurrogateOutcome:
    """Train the surrogate, or load it from the cache (`surrogate/<key>`)."""
    torch.set_num_threads(ctx.torch_threads)
    return SurrogateOutcome(job.id, _trained(ctx, job))


def _trained(ctx: RunContext, job: SurrogateJob) -> SurrogateRecord:
    weights_dir = Path(ctx.scenario.weights_dir) if ctx.scenario.weights_dir else None
    return train_surrogate(
        job.spec,
        live(ctx).data.split(job.spec.split),
        Cache(ctx.cache_dir).root / "surrogate",
        device=ctx.device,
        weights_dir=weights_dir,
    )


def _attacker(ctx: RunContext, members: tuple[SurrogateJob, ...]) -> list[torch.nn.Module]:
    return [load_surrogate(_trained(ctx, m), m.spec, ctx.device) for m in members]


def run_cell_job(ctx: RunContext, job: CellJob, surrogates: tuple[SurrogateJob, ...], clean_key: str) -> CellOutcome:
    """Attack with the job's surrogate(s) at every epsilon, score the target, measure; cached by the job key.
    `surrogates` holds the job's members and siblings (the plan's jobs for `member_keys` and `sibling_keys`)."""
    cache = Cache(ctx.cache_dir)
    stored = cache.load_record("cell", job.key)
    if stored is not None:
        records = tuple(CellRecord.model_validate(r) for r in json.loads(stored))
        return CellOutcome(job.id, job.key, records, from_cache=True)
    torch.set_num_threads(ctx.torch_threads)
    lv = live(ctx)
    sc, data, target, test = ctx.scenario, lv.data, lv.target, lv.data.test
    k = _classes(ctx)
    y_auc = auc_labels(test.y, data.task, k)
    groups = test.groups if data.patient_level else None
    clean_scores = cache.load_arrays("clean", clean_key)["scores"]
    adversarial, check = _attacker_outcome(ctx, job, surrogates, y_auc, groups)
    shown = example_indices(test.y)
    records, arrays = [], {}
    for i, eps in enumerate(job.epsilons_pm1):
        x_adv = adversarial[eps]
        x_ctrl = control_noise(test.x, x_adv, seed=sc.seed)
        if sc.delivery == "uint8":
            from medaudit.attacks import deliver_uint8

            x_adv, x_ctrl = deliver_uint8(x_adv), deliver_uint8(x_ctrl)
        queries_before = target.queries
        adv_scores, ctrl_scores = target.scores(x_adv), target.scores(x_ctrl)
        queries = target.queries - queries_before
        paired = bootstrap_paired_auc(
            y_auc,
            clean_scores,
            adv_scores,
            ctrl_scores,
            resamples=sc.bootstrap.resamples,
            confidence=sc.bootstrap.confidence,
            seed=sc.seed,
            groups=groups,
        )
        whitebox = check.whitebox_auc[i]
        records.append(
            CellRecord(
                id=job.cell_id(eps),
                surrogate_id=job.attacker_id,
                member_ids=job.member_ids,
                row_id=job.row_id,
                attack_id=job.id.split("/", 1)[1],
                attack=job.attack,
                epsilon_pm1=eps,
                epsilon_grey_levels=eps * GREY_LEVELS_PER_PM1,
                auc_clean=IntervalRecord.of(paired.clean),
                auc_adversarial=IntervalRecord.of(paired.adversarial),
                auc_control=IntervalRecord.of(paired.control),
                relative_auc=IntervalRecord.of(paired.relative),
                relative_auc_control=IntervalRecord.of(paired.relative_control),
                adversarial_specific_drop=IntervalRecord.of(paired.adversarial_specific_drop),
                per_class_auc_clean=tuple(per_class_auc(y_auc, clean_scores)),
                per_class_auc_adversarial=tuple(per_class_auc(y_auc, adv_scores)),
                surrogate_auc_clean=check.surrogate_auc_clean,
                surrogate_auc_whitebox=whitebox,
                sibling_relative_auc=check.sibling_relative_auc[i],
                whitebox_flag=bool(paired.adversarial.point < whitebox - 0.05),
                operating_point=operating_point(ctx, test.y, clean_scores, adv_scores, ctrl_scores)
                if data.task == "binary"
                else None,
                mean_ssim=mean_ssim(test.x, x_adv),
                mean_ssim_control=mean_ssim(test.x, x_ctrl),
                max_abs_delta_pm1=float(np.max(np.abs(x_adv - test.x))),
                target_queries=queries,
            )
        )
        arrays[f"{i}_adversarial_scores"] = adv_scores
        arrays[f"{i}_control_scores"] = ctrl_scores
        arrays[f"{i}_example_adversarial"] = x_adv[shown]
    cache.store("cell", job.key, json.dumps([r.model_dump(mode="json") for r in records]), arrays)
    return CellOutcome(job.id, job.key, tuple(records), from_cache=False)


def operating_point(
    ctx: RunContext, y: np.ndarray, clean: np.ndarray, adv: np.ndarray, ctrl: np.ndarray
) -> OperatingPoint:
    """Decisions at the clinical threshold: the scenario's fixed threshold, else the one giving its specificity."""
    gate = ctx.scenario.gate
    if gate.threshold is not None:
        threshold, rule = gate.threshold, f"fixed score threshold {gate.threshold:g} (scenario gate.threshold)"
    else:
        threshold = threshold_at_specificity(y, clean, gate.specificity)
        rule = (
            f"threshold giving specificity ≥ {gate.specificity:g} on the clean test images (scenario gate.specificity)"
        )
    lost_adv, lost_ctrl = decision_changes(y, clean, adv, threshold), decision_changes(y, clean, ctrl, threshold)
    return OperatingPoint(
        threshold=threshold,
        threshold_rule=rule,
        sensitivity_clean=sensitivity_at_threshold(y, clean, threshold),
        specificity_clean=specificity_at_threshold(y, clean, threshold),
        sensitivity_adversarial=sensitivity_at_threshold(y, adv, threshold),
        specificity_adversarial=specificity_at_threshold(y, adv, threshold),
        sensitivity_control=sensitivity_at_threshold(y, ctrl, threshold),
        specificity_control=specificity_at_threshold(y, ctrl, threshold),
        true_positives_lost=lost_adv.true_positives_lost,
        false_positives_created=lost_adv.false_positives_created,
        true_positives_lost_control=lost_ctrl.true_positives_lost,
        false_positives_created_control=lost_ctrl.false_positives_created,
        decision_flips=lost_adv.flips,
        decision_flips_control=lost_ctrl.flips,
    )


def _attacker_outcome(
    ctx: RunContext,
    job: CellJob,
    surrogates: tuple[SurrogateJob, ...],
    y_auc: np.ndarray,
    groups: np.ndarray | None,
) -> tuple[dict[float, np.ndarray], AttackerCheck]:
    """The job's adversarial images and the attacker's own checks, each from the cache where it is there.
    Neither depends on the target; the surrogates are loaded only when something is missing."""
    cache = Cache(ctx.cache_dir)
    stored = cache.load_record("attacker", job.attacker_key)
    if stored is not None and cache.has("adversarial", job.adversarial_key):
        return _stored_adversarial(cache, job), AttackerCheck.model_validate_json(stored)
    task, test = live(ctx).data.task, live(ctx).data.test
    by_key = {s.key: s for s in surrogates}
    models = _attacker(ctx, tuple(by_key[k] for k in job.member_keys))
    model = models[0] if len(models) == 1 else LogitEnsemble(models).eval()
    adversarial = _adversarial_images(ctx, job, models, test)
    if stored is not None:
        return adversarial, AttackerCheck.model_validate_json(stored)
    siblings = _attacker(ctx, tuple(by_key[k] for k in job.sibling_keys))
    sibling_clean = [auc(y_auc, predict_scores(m, test.x, task, ctx.device)) for m in siblings]
    whitebox, sibling_relative = [], []
    for eps in job.epsilons_pm1:
        x_adv = adversarial[eps]
        if ctx.scenario.delivery == "uint8":
            from medaudit.attacks import deliver_uint8

            x_adv = deliver_uint8(x_adv)  # what the target is handed is what the attacker is checked on
        whitebox.append(auc(y_auc, predict_scores(model, x_adv, task, ctx.device)))
        moved = [auc(y_auc, predict_scores(m, x_adv, task, ctx.device)) / c for m, c in zip(siblings, sibling_clean)]
        sibling_relative.append(float(np.mean(moved)) if moved else None)
    check = AttackerCheck(
        surrogate_auc_clean=_bootstrap_auc(ctx, y_auc, predict_scores(model, test.x, task, ctx.device), groups),
        whitebox_auc=tuple(whitebox),
        sibling_relative_auc=tuple(sibling_relative),
    )
    cache.store("attacker", job.attacker_key, check.model_dump_json())
    return adversarial, check


def _stored_adversarial(cache: Cache, job: CellJob) -> dict[float, np.ndarray]:
    stored = cache.load_arrays("adversarial", job.adversarial_key)
    return {eps: stored[str(i)] for i, eps in enumerate(job.epsilons_pm1)}


def _adversarial_images(
    ctx: RunContext, job: CellJob, models: list[torch.nn.Module], test: Images
) -> dict[float, np.ndarray]:
    """The job's adversarial images at every epsilon. They depend on the surrogates, attack, epsilons and
    test images but not on the target, so audits of several targets share them through the cache."""
    cache = Cache(ctx.cache_dir)
    if cache.has("adversarial", job.adversarial_key):
        return _stored_adversarial(cache, job)
    lv = live(ctx)
    perturbed = craft_adversarial(
        job.attack,
        models,
        test.x,
        test.y,
        epsilons_pm1=job.epsilons_pm1,
        n_logits=n_logits(lv.data.task, _classes(ctx)),
        multilabel=lv.data.task == "multilabel",
        batch_size=ctx.batch_size,
        seed=ctx.scenario.seed,
        device=ctx.device,
    )
    images = {eps: perturbed[eps].x_adv for eps in job.epsilons_pm1}
    cache.store(
        "adversarial", job.adversarial_key, "{}", {str(i): images[eps] for i, eps in enumerate(job.epsilons_pm1)}
    )
    return images


# ---------------------------------------------------------------- executors
Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class Executed:
    surrogates: tuple[SurrogateOutcome, ...]
    cells: tuple[CellOutcome, ...]
    train_seconds: float
    cells_seconds: float


def _members(plan: Plan, job: CellJob) -> tuple[SurrogateJob, ...]:
    """The surrogate jobs a cell job loads: its members and its siblings."""
    wanted = set(job.member_keys) | set(job.sibling_keys)
    return tuple(s for s in plan.surrogates if s.key in wanted)


class LocalExecutor:
    """Runs every job in this process, in plan order."""

    name = "local"

    def run(self, plan: Plan, progress: Progress | None = None) -> Executed:
        ctx = plan.context
        t0 = time.perf_counter()
        surrogates = []
        for i, job in enumerate(plan.surrogates):
            surrogates.append(run_surrogate_job(ctx, job))
            if progress:
                progress("surrogates", i + 1, len(plan.surrogates))
        t1 = time.perf_counter()
        cells = []
        for i, job in enumerate(plan.cells):
            cells.append(run_cell_job(ctx, job, _members(plan, job), plan.clean_key))
            if progress:
                progress("cells", i + 1, len(plan.cells))
        return Executed(tuple(surrogates), tuple(cells), t1 - t0, time.perf_counter() - t1)


class RayExecutor:
    """Runs surrogate jobs, then cell jobs, as Ray tasks on a cluster (`address`, or a local one).

    A CPU task asks for `torch_threads` CPUs, a cuda task for one GPU and one CPU; the cache folder
    must be one every worker sees (a shared file system)."""

    name = "ray"

    def __init__(self, address: str | None = None):
        self.address = address

    def _map(self, ray, fn, calls: list[tuple], options: dict, phase: str, progress: Progress | None) -> list:
        remote = ray.remote(fn).options(**options)
        refs = [remote.remote(*args) for args in calls]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list = [None] * len(refs)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            results[index[done[0]]] = ray.get(done[0])
            if progress:
                progress(phase, len(refs) - len(pending), len(refs))
        return results

    def run(self, plan: Plan, progress: Progress | None = None) -> Executed:
        import ray

        from medaudit.errors import AuditInputError

        ctx = plan.context
        if not ray.is_initialized():
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                    **({} if self.address else {"num_cpus": max(ctx.torch_threads, 1)}),
                )
            except ConnectionError as exc:
                raise AuditInputError(
                    f"--address {self.address}: no Ray cluster there ({exc}); start one with "
                    "`ray start --head` or drop --address for a local one"
                ) from None
        gpu = ctx.device == "cuda"  # a GPU task needs one CPU to feed it; a CPU task gets the threads it will use
        options = {"num_cpus": 1 if gpu else ctx.torch_threads, "num_gpus": 1 if gpu else 0, "max_retries": 0}
        t0 = time.perf_counter()
        surrogates = self._map(
            ray, run_surrogate_job, [(ctx, job) for job in plan.surrogates], options, "surrogates", progress
        )
        t1 = time.perf_counter()
        cells = self._map(
            ray,
            run_cell_job,
            [(ctx, job, _members(plan, job), plan.clean_key) for job in plan.cells],
            options,
            "cells",
            progress,
        )
        return Executed(tuple(surrogates), tuple(cells), t1 - t0, time.perf_counter() - t1)


EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}  # name -> class; tests enrol every entry
