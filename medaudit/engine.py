"""The audit as three steps: plan (pure: jobs with ids and cache keys), execute (an executor runs the
jobs over the shared cache), finalize (ε choice, fitness, gate, spread, comparisons, examples), then
one atomic write of the complete `results.json` and the per-image files it cites.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from medaudit import zoo
from medaudit.cache import Cache
from medaudit.criteria import judge
from medaudit.errors import AuditInputError
from medaudit.execute import EXECUTORS, Executed, auc_labels, example_indices
from medaudit.files import atomic_write, sha256_file
from medaudit.finalize import choose_epsilons, comparisons, examples, learning_curve, seed_spread, with_fitness
from medaudit.metrics import auc
from medaudit.plan import Live, Plan, RunContext, atlas_ids, live, make_plan, safe_name, store_clean_scores
from medaudit.results import (
    AuditResults,
    CellRecord,
    DataRecord,
    EnvironmentRecord,
    ExecutionStats,
    LoadCheck,
    PackageVersion,
    PerImageFile,
    Provenance,
    SurrogateResult,
    TargetRecord,
    Timings,
    read_results,
    write_results,
)
from medaudit.scenario import Scenario
from medaudit.surrogates import default_device

PACKAGES = (
    "medaudit",
    "torch",
    "torchvision",
    "onnxruntime",
    "onnx",
    "adversarial-robustness-toolbox",
    "numpy",
    "scikit-learn",
    "scikit-image",
    "scipy",
    "pydantic",
    "jinja2",
    "weasyprint",
    "matplotlib",
    "ray",
)


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what to measure): where outputs and the cache go, and on what."""

    out_dir: Path
    cache_dir: Path
    resume: bool = False
    device: str | None = None  # cpu | cuda; default cuda when torch sees one
    batch_size: int = 64
    executor: str = "local"  # a key of execute.EXECUTORS
    address: str | None = None  # Ray cluster address (executor ray)
    command: str = ""  # the exact command line, recorded for reproduction


def code_commit() -> str:
    """The git commit of medaudit's source (with `+dirty` for uncommitted edits), or why it is unknown."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return f"unknown: installed from a package, not a git checkout (medaudit {metadata.version('medaudit')})"
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown: git is not available"
    return commit + ("+dirty" if dirty else "")


def environment(device: str, executor: str) -> EnvironmentRecord:
    versions = []
    for name in PACKAGES:
        try:
            versions.append(PackageVersion(name=name, version=metadata.version(name)))
        except metadata.PackageNotFoundError:
            versions.append(PackageVersion(name=name, version="not installed"))
    return EnvironmentRecord(
        packages=tuple(versions),
        python=sys.version.split()[0],
        platform=platform.platform(),
        device=device,
        gpu=torch.cuda.get_device_name(0) if device == "cuda" else None,
        cpu_threads=torch.get_num_threads(),
        executor=executor,
    )


def target_record(lv: Live, clean_auc: float) -> TargetRecord:
    t = lv.target
    check = t.check_report
    return TargetRecord(
        path=str(t.path),
        name=t.card.name or t.path.name,
        sha256=t.sha256,
        card=t.card.model_dump(exclude={"sources", "batch_size"}),
        card_sources=dict(t.card.sources),
        load_check=LoadCheck(
            images=check["images"],
            output_columns=check["output_columns"],
            deterministic_max_diff=check["deterministic_max_diff"],
            passed=check["passed"],
        ),
        device=t.device,
        clean_auc=clean_auc,
    )


def data_record(lv: Live, scenario: Scenario, clean_auc: float) -> DataRecord:
    data, test = lv.data, lv.data.test
    notes = list(data.notes)
    if data.task == "binary" and clean_auc < 0.5:
        notes.append(f"target clean AUC {clean_auc:.3f} < 0.5: check the card's positive_index and the labels")
    section = scenario.data
    if data.task == "binary":
        positive = ", ".join(map(str, section.positive_labels)) if section.positive_labels else "1"
        negative = ", ".join(map(str, section.negative_labels)) if section.negative_labels else "every other label"
        mapping = f"source label(s) {positive} → positive ({data.class_names[-1]}); {negative} → negative"
    else:
        mapping = f"{data.task}: source labels used as they are ({', '.join(data.class_names)})"
    return DataRecord(
        source=data.source,
        origin=section.origin or "not stated (give `data.origin` in the scenario)",
        licence=section.licence or "not stated (give `data.licence` in the scenario)",
        resolved_path=data.resolved_path,
        sha256=data.source_sha256,
        split_ids_sha256=data.split_ids_sha256,
        patient_level=data.patient_level,
        split_rule=data.split_rule,
        label_mapping=mapping,
        task=data.task,
        class_names=tuple(data.class_names),
        image_size=int(test.x.shape[-1]),
        resampling=data.resampling,
        channels=int(test.x.shape[1]),
        split_sizes={name: int(len(idx)) for name, idx in data.splits.items()},
        test_size=len(test),
        test_positives=int(np.sum(test.y > 0)) if test.y.ndim == 1 else None,
        test_selection=data.test_selection,
        notes=tuple(notes),
    )


def _check_resumable(path: Path, scenario: Scenario, lv: Live) -> None:
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


def _surrogate_results(plan: Plan, executed: Executed) -> tuple[SurrogateResult, ...]:
    """One result per attacker: each trained surrogate, then each ensemble (from its cells)."""
    outcome = {o.job_id: o for o in executed.surrogates}
    test_auc = {c.surrogate_id: c.surrogate_auc_clean for o in executed.cells for c in o.records}
    out = []
    for job in plan.surrogates:
        r = outcome[job.id].record
        out.append(
            SurrogateResult(
                id=job.id,
                row_id=job.row_id,
                arch=r.arch,
                family=zoo.family(r.arch),
                init=r.init,
                split=r.split,
                seed=r.seed,
                member_ids=(),
                n_train=r.n_train,
                n_val=r.n_val,
                val_auc=r.val_auc,
                test_auc=test_auc[job.id],
                epochs_run=r.epochs_run,
                best_epoch=r.best_epoch,
                stop_reason=r.stop_reason,
                learning_curve=learning_curve(r),
                train_seconds=r.train_seconds,
                from_cache=r.from_cache,
                atlas=atlas_ids(job.row),
                fitness=None,
            )
        )
    by_id = {s.id: s for s in out}
    for job in plan.cells:
        if len(job.member_ids) < 2 or job.attacker_id in by_id:
            continue
        members = [by_id[m] for m in job.member_ids]
        by_id[job.attacker_id] = SurrogateResult(
            id=job.attacker_id,
            row_id=job.row_id,
            arch="+".join(dict.fromkeys(m.arch for m in members)),
            family="ensemble",
            init="+".join(dict.fromkeys(m.init for m in members)),
            split="+".join(dict.fromkeys(m.split for m in members)),
            seed=-1,
            member_ids=job.member_ids,
            n_train=sum(m.n_train for m in members),
            n_val=members[0].n_val,
            val_auc=float(np.mean([m.val_auc for m in members])),
            test_auc=test_auc[job.attacker_id],
            epochs_run=0,
            best_epoch=0,
            stop_reason="ensemble of trained members (logits averaged)",
            learning_curve=(),
            train_seconds=sum(m.train_seconds for m in members),
            from_cache=all(m.from_cache for m in members),
            atlas=tuple(dict.fromkeys(a for m in members for a in m.atlas)),
            fitness=None,
        )
        out.append(by_id[job.attacker_id])
    return tuple(out)


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
    t0 = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    device = options.device or default_device()
    executor_cls = EXECUTORS[options.executor]
    ctx = RunContext(
        scenario=scenario,
        target_path=str(target_path),
        data_source=str(data_source or scenario.data.source or ""),
        device=device,
        batch_size=options.batch_size,
        cache_dir=str(options.cache_dir),
        torch_threads=torch.get_num_threads(),
    )
    if not ctx.data_source:
        raise AuditInputError("no data: give --data PATH or `data.source` in the scenario")
    lv = live(ctx)
    plan = make_plan(ctx, lv.target, lv.data, lv.test_sha256)  # every input is checked before anything is written
    results_path = options.out_dir / "results.json"
    if options.resume:
        _check_resumable(results_path, scenario, lv)
    test, k = lv.data.test, len(lv.target.card.class_names or ()) or 1
    clean_scores = lv.target.scores(test.x)
    clean_auc = auc(auc_labels(test.y, lv.data.task, k), clean_scores)
    store_clean_scores(plan, clean_scores)
    driver_queries = lv.target.queries
    provenance = Provenance(
        medaudit_version=metadata.version("medaudit"),
        code_commit=code_commit(),
        command=options.command,
        scenario_path=str(scenario_path),
        scenario_file_sha256=sha256_file(scenario_path),
        scenario_canonical_sha256=scenario.content_hash(),
        started_at=started_at,
        finished_at=None,
    )
    running = AuditResults(
        status="running",
        provenance=provenance,
        scenario=scenario,
        target=target_record(lv, clean_auc),
        data=data_record(lv, scenario, clean_auc),
        environment=environment(device, options.executor),
    )
    write_results(running, results_path)  # what --resume checks against; finished jobs live in the cache
    log(
        f"plan: {len(plan.surrogates)} surrogate(s), {len(plan.cells)} cell job(s) "
        f"({len(scenario.attacks)} attack(s) x {len(scenario.epsilons_pm1)} epsilon(s) each) on {len(test)} test images; "
        f"target clean AUC {clean_auc:.3f}; device {device}; executor {options.executor}"
    )
    load_seconds = time.perf_counter() - t0

    executor = executor_cls(options.address) if options.executor == "ray" else executor_cls()
    executed = executor.run(plan, progress)

    t_final = time.perf_counter()
    cache = Cache(ctx.cache_dir)
    cells: list[CellRecord] = [c for o in executed.cells for c in o.records]
    arrays = {o.key: cache.load_arrays("cell", o.key) for o in executed.cells}
    cell_job = {c.id: o for o in executed.cells for c in o.records}

    def arrays_of(cell: CellRecord) -> dict[str, np.ndarray]:
        job = cell_job[cell.id]
        i = next(i for i, c in enumerate(job.records) if c.id == cell.id)
        a = arrays[job.key]
        return {
            "adversarial_scores": a[f"{i}_adversarial_scores"],
            "control_scores": a[f"{i}_control_scores"],
            "example_adversarial": a[f"{i}_example_adversarial"],
        }

    choices = choose_epsilons(cells, scenario.perceptibility)
    surrogates = with_fitness(_surrogate_results(plan, executed), cells, choices, scenario.fitness)
    rules, verdict, worst = judge(scenario, tuple(cells), surrogates, choices)
    groups = test.groups if lv.data.patient_level else None
    shown = example_indices(test.y)

    per_image_dir = options.out_dir / "per_image"
    per_image = [
        _write_npz(
            per_image_dir / "clean.npz",
            options.out_dir,
            scores=clean_scores,
            labels=test.y,
            groups=test.groups.astype(str),
        )
    ]
    for cell in cells:
        a = arrays_of(cell)
        per_image.append(
            _write_npz(
                per_image_dir / f"{safe_name(cell.id)}.npz",
                options.out_dir,
                adversarial_scores=a["adversarial_scores"],
                control_scores=a["control_scores"],
            )
        )
    queries = driver_queries + sum(c.target_queries for c in cells)
    results = running.model_copy(
        update=dict(
            status="complete",
            provenance=provenance.model_copy(
                update={"finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            ),
            surrogates=surrogates,
            cells=tuple(cells),
            epsilon_choice=choices,
            gate=rules,
            verdict=verdict,
            worst_case=worst,
            seed_spread=seed_spread(cells),
            comparisons=comparisons(scenario, cells, choices, test.y, clean_scores, groups, lv.data.task, k, arrays_of),
            examples=examples(
                cells,
                choices,
                labels=test.y,
                clean_scores=clean_scores,
                shown=shown,
                originals=test.x[shown],
                arrays_of=arrays_of,
            ),
            per_image=tuple(per_image),
            target_queries=queries,
            timings=Timings(
                load_seconds=load_seconds,
                train_seconds=executed.train_seconds,
                cells_seconds=executed.cells_seconds,
                finalize_seconds=time.perf_counter() - t_final,
                total_seconds=time.perf_counter() - t0,
            ),
            execution=ExecutionStats(
                surrogates_trained=sum(not o.record.from_cache for o in executed.surrogates),
                surrogates_cached=sum(o.record.from_cache for o in executed.surrogates),
                cell_jobs_computed=sum(not o.from_cache for o in executed.cells),
                cell_jobs_cached=sum(o.from_cache for o in executed.cells),
            ),
        )
    )
    write_results(results, results_path)
    return results


def _write_npz(path: Path, out_dir: Path, **arrays) -> PerImageFile:
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
    return PerImageFile(path=str(path.relative_to(out_dir)), sha256=sha256_file(path))
