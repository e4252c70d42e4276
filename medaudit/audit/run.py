"""The audit as five steps: plan (pure: jobs with ids and cache keys), execute (an executor runs the jobs over the
shared cache), bisect (epsilon* measured between grid points, by the same executor), finalize and judge (epsilon
choice, fitness, breaking epsilons, the gate), then one atomic write of the complete `results.json` and the
per-image files it cites. Only orchestration lives here.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from medaudit.attackers import default_device
from medaudit.audit.assemble import complete, running_record
from medaudit.audit.bisection import bisect
from medaudit.audit.stored import StoredScores
from medaudit.core import AuditInputError
from medaudit.engine import (
    EXECUTORS,
    Live,
    Plan,
    RunContext,
    RunOptions,
    compute_reference,
    delivered,
    execute,
    make_plan,
)
from medaudit.records import AuditResults, read_results, write_results
from medaudit.scenario import Scenario


def run_audit(
    scenario: Scenario,
    *,
    scenario_path: Path,
    target_path: Path,
    data_source: str | None,
    options: RunOptions,
    log=print,
    progress=None,
) -> AuditResults:
    """Plan, execute, finalize; write `results.json` and `per_image/`; return the complete, judged record."""
    started = time.perf_counter()
    device = options.device or default_device()
    source = str(data_source or scenario.data.source or "")
    if not source:
        raise AuditInputError("no data: give --data PATH or `data.source` in the scenario")
    ctx = RunContext(
        scenario, str(target_path), source, device, options.batch_size, str(options.cache_dir), torch.get_num_threads()
    )
    ctx, lv = delivered(ctx)  # `delivery: source` becomes the data's own depth
    scenario = ctx.scenario
    plan = make_plan(ctx, lv.target.card, lv.target.sha256, lv.data, lv.test_sha256)  # every input checked first
    results_path = options.out_dir / "results.json"
    if options.resume:
        check_resumable(results_path, scenario, lv)
    reference = compute_reference(ctx, plan.reference_key)
    running = running_record(scenario, scenario_path, lv, reference, options, device)
    write_results(running, results_path)  # what --resume checks against; finished jobs live in the cache
    log(summary(plan, lv, running.target.clean_auc, options))
    load_seconds = time.perf_counter() - started
    executor = EXECUTORS[options.executor].from_options(options)
    executed = execute(executor, plan, progress)
    scores = StoredScores(plan.context.cache_dir, executed)  # every grid cell's per-image scores, read once
    bisected = bisect(plan, executed, executor, lv, reference, scores, progress)
    results = complete(
        running,
        plan,
        executed,
        lv,
        reference,
        options.out_dir,
        started=started,
        load_seconds=load_seconds,
        bisected=bisected,
        scores=scores,
    )
    write_results(results, results_path)
    return results


def summary(plan: Plan, lv: Live, clean_auc: float, options: RunOptions) -> str:
    sc = plan.context.scenario
    grid = "auto (searched per attack)" if sc.epsilons_pm1 == "auto" else f"{len(sc.epsilons_pm1)} epsilon(s)"
    return (
        f"plan: {len(plan.surrogates)} surrogate(s), {len(plan.searches)} epsilon search(es), "
        f"{len(plan.cells)} transfer cell job(s), {len(plan.bounds)} bound job(s); {len(sc.attacks)} attack(s), {grid}, "
        f"{len(lv.data.test)} test images; target clean AUC {clean_auc:.3f}; device {plan.context.device}; "
        f"executor {options.executor}"
    )


def check_resumable(path: Path, scenario: Scenario, lv: Live) -> None:
    """--resume continues the run in `path` only if the scenario, target and data are unchanged."""
    if not path.is_file():
        return
    previous = read_results(path)
    for what, old, new in (
        ("scenario", previous.provenance.scenario_canonical_sha256, scenario.content_hash()),
        ("target", previous.target.sha256, lv.target.sha256),
        ("data", previous.data.split_ids_sha256, lv.data.split_ids_sha256),
    ):
        if old != new:
            raise AuditInputError(
                f"{path}: cannot resume: the {what} changed since that run; use another --out "
                "or drop --resume to start over"
            )
