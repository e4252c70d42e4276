"""Assemble the run's record: what is known before the jobs run (provenance, target, data, environment), then
everything the executor stored, finalized, judged and written with its per-image files.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from medaudit.attacks import TIERS
from medaudit.audit.bisection import Bisected
from medaudit.audit.stored import StoredScores
from medaudit.core import (
    atomic_write,
    auc,
    code_version,
    package_versions,
    processor,
    python_and_platform,
    safe_name,
    sha256_file,
)
from medaudit.engine import Executed, Live, Plan, Reference, RunOptions, auc_labels
from medaudit.judging import (
    anomalies,
    breaking_epsilons,
    choose_epsilons,
    comparisons,
    examples,
    judge,
    order_check,
    sample_sizes,
    seed_spread,
    surrogate_results,
    worst_case,
)
from medaudit.records import (
    AuditResults,
    DataRecord,
    EnvironmentRecord,
    ExecutionStats,
    PackageVersion,
    PerImageFile,
    Provenance,
    Readiness,
    TargetRecord,
    Timings,
)
from medaudit.scenario import Scenario


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def running_record(
    scenario: Scenario, scenario_path: Path, lv: Live, ref: Reference, options: RunOptions, device: str
) -> AuditResults:
    """The record as written before any job runs: what `--resume` checks against."""
    target, data, test = lv.target, lv.data, lv.data.test
    k = len(target.card.class_names or ()) or 1
    clean_auc = auc(auc_labels(test.y, data.task, k), ref.clean_scores)
    version = code_version()
    python, plat = python_and_platform()
    section = scenario.data
    if data.task == "binary":
        positive = ", ".join(map(str, section.positive_labels)) if section.positive_labels else "1"
        negative = ", ".join(map(str, section.negative_labels)) if section.negative_labels else "every other label"
        mapping = f"source label(s) {positive} → positive ({data.class_names[-1]}); {negative} → negative"
    else:
        mapping = f"{data.task}: source labels used as they are ({', '.join(data.class_names)})"
    return AuditResults(
        status="running",
        provenance=Provenance(
            medaudit_version=metadata.version("medaudit"),
            code_commit=version.commit,
            code_committed=version.committed,
            command=options.command,
            scenario_path=str(scenario_path),
            scenario_file_sha256=sha256_file(scenario_path),
            scenario_canonical_sha256=scenario.content_hash(),
            started_at=now(),
            finished_at=None,
        ),
        scenario=scenario,
        target=TargetRecord(
            path=str(target.path),
            name=target.card.name or target.path.name,
            sha256=target.sha256,
            card=target.card.model_dump(exclude={"sources", "batch_size"}),
            card_sources=dict(target.card.sources),
            load_check=target.load_check,
            device=target.device,
            clean_auc=clean_auc,
            threshold=ref.threshold,
            threshold_rule=ref.threshold_rule,
        ),
        data=DataRecord(
            source=data.source,
            origin=section.origin,
            licence=section.licence,
            resolved_path=data.resolved_path,
            sha256=data.source_sha256,
            split_ids_sha256=data.split_ids_sha256,
            patient_level=data.patient_level,
            split_rule=data.split_rule,
            label_mapping=mapping,
            task=data.task,
            class_names=tuple(data.class_names),
            bit_depth=data.bit_depth,
            image_size=int(test.x.shape[-1]),
            resampling=data.resampling,
            channels=int(test.x.shape[1]),
            split_sizes={name: int(len(idx)) for name, idx in data.splits.items()},
            test_size=len(test),
            test_positives=int(np.sum(test.y > 0)) if test.y.ndim == 1 else None,
            test_selection=data.test_selection,
            notes=tuple(data.notes),
        ),
        environment=EnvironmentRecord(
            packages=tuple(PackageVersion(name=n, version=v) for n, v in package_versions()),
            python=python,
            platform=plat,
            processor=processor(),
            device=device,
            gpu=torch.cuda.get_device_name(0) if device == "cuda" else None,
            cpu_threads=torch.get_num_threads(),
            executor=options.executor,
        ),
    )


def complete(
    running: AuditResults,
    plan: Plan,
    executed: Executed,
    lv: Live,
    ref: Reference,
    out_dir: Path,
    *,
    started: float,
    load_seconds: float,
    bisected: Bisected,
    scores: StoredScores,
) -> AuditResults:
    """The complete, judged record; writes the per-image files it cites."""
    t_final = time.perf_counter()
    sc, test, task = plan.context.scenario, lv.data.test, lv.data.task
    k = len(lv.target.card.class_names or ()) or 1
    y_auc = auc_labels(test.y, task, k)
    groups = test.groups if lv.data.patient_level else None
    cells = tuple(c for o in executed.cells + executed.bounds for c in o.records)
    tiers = tuple(o.status for o in executed.bounds if o.status is not None)
    searches = {o.attack_id: o.search for o in executed.searches if o.search is not None}
    choices = choose_epsilons(cells, sc, searches)
    trained = {o.job_id: o.record for o in executed.surrogates}
    transfer_cells = [c for c in cells if c.tier == "transfer"]
    surrogates = surrogate_results(plan, trained, transfer_cells, choices, sc.fitness)
    breaking = breaking_epsilons(
        sc,
        cells,
        choices,
        y_auc,
        ref.clean_scores,
        groups,
        scores,
        points=bisected.points,
        stops=bisected.stops,
        grey_level_pm1=bisected.grey_level_pm1,
    )
    judged = judge(sc, cells, surrogates, choices, breaking, tiers, order_check(cells, y_auc, scores))
    flagged = anomalies(
        judged.masking,
        judged.unverified,
        running.target.clean_auc,
        task,
        [f"{t.tier} tier not run: {t.reason}" for t in tiers if not t.available],
    )
    per_image = _write_per_image(out_dir, ref, test, cells, scores)
    queries = (
        2 * lv.target.load_check.images
        + ref.record.target_queries
        + sum(o.target_queries for o in executed.searches)
        + sum(c.target_queries for c in transfer_cells)
        + sum(t.target_queries for t in tiers)
        + bisected.target_queries
    )
    return running.model_copy(
        update=dict(
            status="complete",
            provenance=running.provenance.model_copy(update={"finished_at": now()}),
            surrogates=surrogates,
            cells=cells,
            tiers=tiers,
            epsilon_choice=choices,
            gate=judged.rules,
            tier_verdicts=judged.tier_verdicts,
            verdict_rows=judged.rows,
            verdict=judged.verdict,
            worst_case=worst_case(cells, choices, running.target.card.prevalence),
            sample_sizes=sample_sizes(cells, sc, TIERS),
            seed_spread=seed_spread(cells),
            comparisons=comparisons(
                sc, transfer_cells, choices, y_auc, ref.clean_scores, groups, lambda c: scores(c).adversarial
            ),
            examples=examples(
                judged.rules,
                cells,
                labels=test.y,
                originals=test.x,
                clean_scores=ref.clean_scores,
                flips_of=scores.flips,
            ),
            anomalies=flagged,
            readiness=readiness(running, surrogates, flagged),
            per_image=per_image,
            target_queries=queries,
            timings=Timings(
                load_seconds=load_seconds,
                train_seconds=executed.seconds["surrogates"],
                search_seconds=executed.seconds["search"],
                cells_seconds=executed.seconds["cells"],
                bounds_seconds=executed.seconds["bounds"],
                bisection_seconds=bisected.seconds,
                finalize_seconds=time.perf_counter() - t_final,
                total_seconds=time.perf_counter() - started,
            ),
            execution=ExecutionStats(
                surrogates_trained=sum(not o.record.from_cache for o in executed.surrogates),
                surrogates_cached=sum(o.record.from_cache for o in executed.surrogates),
                cell_jobs_computed=sum(not o.from_cache for o in executed.cells + executed.bounds),
                cell_jobs_cached=sum(o.from_cache for o in executed.cells + executed.bounds),
                bisection_jobs_computed=bisected.jobs_computed,
                bisection_jobs_cached=bisected.jobs_cached,
            ),
        )
    )


NOT_FOR_PATIENTS = ("not a medical device", "demonstration", "demo only", "research use only", "not for clinical use")


def not_for_patients(intended_use: str) -> str | None:
    """The words of an intended use that say the target is no device for patients (a demonstration, not a medical
    device, research use only), or None."""
    low = intended_use.lower()
    return next((words for words in NOT_FOR_PATIENTS if words in low), None)


def readiness(running: AuditResults, surrogates, flagged) -> Readiness:
    """Whether the record can go into a submission as it is: committed code, models made by it, no open anomaly,
    and the intended use, data origin and licence stated."""
    reasons = []
    prov = running.provenance
    if not prov.code_committed:
        reasons.append(f"the code that ran is not a clean commit ({prov.code_commit})")
    current = str(code_version())
    stale = sorted({s.trained_by for s in surrogates if s.from_cache and not s.member_ids and s.trained_by != current})
    if stale:
        reasons.append(f"cached models were trained by other code ({', '.join(stale)}); retrain them with this code")
    reasons += [f"open anomaly {a.id}: {a.text}" for a in flagged]
    use = running.target.card.intended_use
    if use is None:
        reasons.append("no intended use stated (card `intended_use`)")
    elif not_for_patients(use):
        reasons.append(f"the card's intended use says “{not_for_patients(use)}”: not a device to submit")
    if running.data.origin is None:
        reasons.append("no data origin stated (scenario `data.origin`)")
    if running.data.licence is None:
        reasons.append("no data licence stated (scenario `data.licence`)")
    return Readiness(ready=not reasons, reasons=tuple(reasons))


def _write_per_image(out_dir: Path, ref: Reference, test, cells, scores: StoredScores) -> tuple[PerImageFile, ...]:
    """Every image's target score, clean and per cell, hashed so a third party can check the record."""
    per_image_dir = out_dir / "per_image"
    files = [_npz(per_image_dir / "clean.npz", out_dir, scores=ref.clean_scores, labels=test.y, groups=test.groups)]
    for cell in cells:
        s = scores(cell)
        files.append(
            _npz(
                per_image_dir / f"{safe_name(cell.id)}.npz",
                out_dir,
                image_indices=s.image_indices,
                adversarial_scores=s.adversarial,
                control_scores=s.control,
            )
        )
    return tuple(files)


def _npz(path: Path, out_dir: Path, **arrays) -> PerImageFile:
    atomic_write(path, lambda f: np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()}))
    return PerImageFile(path=str(path.relative_to(out_dir)), sha256=sha256_file(path))
