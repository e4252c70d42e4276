"""Re-run the paper's four experiments on one real modality with the shipped scenarios:

    python -m reproduction.reproduce pneumonia|retina|derma|kermany [--data DIR] [--device cuda] [--dry-run]

Trains the targets each experiment needs (EfficientNet-Lite0 and MobileNetV2, ImageNet-pretrained and random,
on the scenario's `target.trained_on` split: d1, or d1/10 for small_data), exports them to ONNX with their card
(`medaudit.attackers.target_training`), and audits each with the scenario (`scenarios/<experiment>.yaml`, found through
`importlib.resources.files("medaudit.scenarios")`) through `medaudit.audit.run.run_audit`. Two things change per run:
the data section (labels, image size, test subset) and `different`, which is written into the scenario as the
other target's architecture (`protocol.DIFFERENT`: Lite0 <-> MobileNetV2, as the paper's Inception-v3 <->
DenseNet-121), so it is fixed in advance and never chosen by attack strength. Seeds, ensembles, attacks, the `auto`
ε grid and training stay as shipped.

After each audit its `results.json` (less its example images) and the per-image score files it cites (scores
only, no labels, ids or images) are copied, hash-checked, to `docs/reproduction/<modality>/<experiment>__<target>/`,
and `run_info.json` records the settings, the machine and each run's time. Resumable: targets, surrogates,
adversarial images and cells are cached by content under --cache. Then `python -m reproduction.document`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from medaudit.attackers.target_training import export_target, train_target
from medaudit.audit.run import run_audit
from medaudit.core.errors import AuditInputError
from medaudit.core.files import atomic_write, sha256_file
from medaudit.core.provenance import processor as cpu_model
from medaudit.engine.plan import RunOptions
from medaudit.records.results import AuditResults, read_results, write_results
from medaudit.scenario.threat_model import Scenario, SurrogateGrid, load_scenario
from reproduction.protocol import (
    DATA_ENV,
    DATA_HELP,
    DIFFERENT,
    EXPERIMENTS,
    MODALITIES,
    RESULTS,
    ROOT,
    RUN_INFO,
    Machine,
    Modality,
    RunEntry,
    RunInfo,
    Settings,
    TargetTraining,
    data_folder,
    run_name,
    target_tag,
)

MIN_TEST_IMAGES = 10  # the scenario format's floor for `data.test_limit`
CLEAN_SCORES = "per_image/clean.npz"  # the target's clean scores; the committed copy keeps `scores` only


def scenario_file(experiment: str) -> Path:
    """The shipped scenario, as the installed package exposes it (`medaudit.scenarios` maps to `scenarios/`)."""
    folder = resources.files("medaudit.scenarios")
    path = Path(str(folder / f"{experiment}.yaml"))
    if not path.is_file():
        raise AuditInputError(
            f"{path}: scenario {experiment!r} not found in importlib.resources.files('medaudit.scenarios') "
            f"({folder}); reinstall medaudit from this checkout (`pip install -e .`)"
        )
    return path


def fixed_different(scenario: Scenario, different: str) -> Scenario:
    """The scenario with every `arch: different` written as `different`, the architecture fixed for this target."""
    surrogates = scenario.surrogates
    if isinstance(surrogates, SurrogateGrid):
        archs = tuple(different if a == "different" else a for a in surrogates.arch)
        return scenario.model_copy(update={"surrogates": surrogates.model_copy(update={"arch": archs})})
    rows = tuple(r.model_copy(update={"arch": different}) if r.arch == "different" else r for r in surrogates)
    return scenario.model_copy(update={"surrogates": rows})


def scenario_for(experiment: str, modality: Modality, settings: Settings, different: str) -> Scenario:
    """The shipped scenario with its data section set for `modality` and `different` fixed; nothing else changes."""
    scenario = load_scenario(scenario_file(experiment))
    data = scenario.data.model_copy(
        update={
            "positive_labels": modality.positive_labels,
            "negative_labels": modality.negative_labels,
            "image_size": settings.image_size,
            "test_limit": settings.test_limit,
        }
    )
    scenario = scenario.model_copy(update={"name": f"{experiment}-{modality.key}", "data": data})
    return fixed_different(scenario, different)


def machine(device: str) -> Machine:
    return Machine(
        device=device,
        torch=torch.__version__,
        cuda=torch.version.cuda,
        gpu=torch.cuda.get_device_name(0) if device == "cuda" else None,
        cpu_threads=torch.get_num_threads(),
        cpu=f"{cpu_model()} ({torch.backends.cpu.get_cpu_capability()})",
    )


def retrained_target(name: str, entry: RunEntry, runs: dict[str, RunEntry]) -> str | None:
    """A warning when this run's target, trained here, differs from the one an earlier run recorded under its id."""
    new = entry.target
    for other, earlier in runs.items():
        old = earlier.target
        if other != name and old.id == new.id and (old.val_auc, old.epochs_run) != (new.val_auc, new.epochs_run):
            return (
                f"warning: target {new.id} trained here (validation AUC {new.val_auc:.4f}, {new.epochs_run} epochs, "
                f"{entry.machine.cpu}, {entry.machine.cpu_threads} threads) differs from the one {other} recorded "
                f"({old.val_auc:.4f}, {old.epochs_run} epochs, {earlier.machine.cpu or 'processor not recorded'}, "
                f"{earlier.machine.cpu_threads} threads): its cache was lost or this machine's kernels differ; the "
                "document names both (Model identity), or --rerun the runs that used the other one, on this machine"
            )
    return None


def scores_only(folder: Path, results: AuditResults) -> AuditResults:
    """Rewrite `folder/per_image/clean.npz` with the target's clean scores only; the results citing its new sha256.

    The audit's own file also holds the test images' labels and patient ids: a slice of the data file, which may not
    be committed. The renderer re-reads both from the data file, checked against the data and split hashes the
    results record (`runs.reread_labels`)."""
    path = folder / CLEAN_SCORES
    with np.load(path, allow_pickle=False) as data:
        scores = data["scores"]
    if scores.dtype.kind != "f":
        raise ValueError(f"{path}: scores of dtype {scores.dtype}; expected floats")
    np.savez_compressed(path, scores=scores)
    sha = sha256_file(path)
    cited = tuple(f.model_copy(update={"sha256": sha}) if f.path == CLEAN_SCORES else f for f in results.per_image)
    return results.model_copy(update={"per_image": cited})


def collect(run_dir: Path, dest: Path) -> None:
    """Copy `results.json` less its example images (PNGs of test images: copies of the data) and every per-image
    file it cites into `dest`, replacing an earlier copy; each file is checked against the sha256 the results
    record, and the clean scores keep no labels or ids (`scores_only`)."""
    results = read_results(run_dir / "results.json")
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for cited in results.per_image:
        copy = staging / cited.path
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run_dir / cited.path, copy)
        if sha256_file(copy) != cited.sha256:
            raise AuditInputError(f"{run_dir / cited.path}: sha256 differs from the one results.json records")
    write_results(scores_only(staging, results.model_copy(update={"examples": ()})), staging / "results.json")
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)


def run_target(
    modality: Modality,
    experiment: str,
    arch: str,
    init: str,
    scenario: Scenario,
    data_path: Path,
    *,
    work: Path,
    cache: Path,
    device: str,
    results_folder: Path,
    command: str,
    seed: int | None = None,
    log: Callable[[str], None] = print,
) -> tuple[str, RunEntry]:
    """Train (or load) one target, audit it with `scenario`, copy the results into `results_folder`; (run folder
    name, its entry). `seed` trains the target from another seed (`train_target`) and names it in the folder."""
    started = time.perf_counter()
    split = scenario.target.trained_on
    tag = target_tag(arch, init, split, seed)
    name = run_name(experiment, arch, init, split, seed)
    record, spec = train_target(
        scenario, data_path, arch=arch, init=init, cache_dir=cache, device=device, seed=seed, log=log
    )
    target = export_target(
        record, spec, work / f"{tag}.onnx", name=f"{modality.key} target {tag}", class_names=modality.class_names
    )
    run_dir = work / name
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "scenario.json"
    path.write_text(scenario.model_dump_json(indent=1))
    results = run_audit(
        scenario,
        scenario_path=path,
        target_path=target,
        data_source=str(data_path),
        options=RunOptions(out_dir=run_dir, cache_dir=cache, device=device, command=command),
        log=log,
    )
    collect(run_dir, results_folder / name)
    seconds = time.perf_counter() - started
    log(f"{name}: clean AUC {results.target.clean_auc:.3f}, {len(results.cells)} cells, {seconds:.0f} s")
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    training = TargetTraining(**{field: getattr(record, field) for field in TargetTraining.model_fields})
    return name, RunEntry(seconds=seconds, finished_at=finished, machine=machine(device), target=training)


def previous_info(folder: Path) -> RunInfo | None:
    """The folder's run info; None where there is none (or only the first protocol's, superseded run by run)."""
    path = folder / RUN_INFO
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    return RunInfo.model_validate(raw) if raw.get("layout") == "reproduction-2" else None


def previous_runs(folder: Path, settings: Settings) -> dict[str, RunEntry]:
    """Runs already recorded in the folder with the same settings; refuse to mix settings in one folder."""
    info = previous_info(folder)
    if info is None:
        return {}
    if info.settings != settings:
        raise AuditInputError(
            f"{folder / RUN_INFO}: the results there were made with {info.settings.model_dump()}, this run asks for "
            f"{settings.model_dump()}; use the same settings, or --results DIR for a separate set"
        )
    return dict(info.runs)


def recorded(folder: Path, runs: dict[str, RunEntry], name: str) -> bool:
    """Whether run `name` is already in the folder: in its run info and with its results copied. A resumed
    reproduction skips it, so the time recorded stays the time it took, not that of a re-run from the cache."""
    return name in runs and (folder / name / "results.json").is_file()


def audits_again(name: str, rerun: list[str] | None) -> bool:
    """Whether --rerun asks to audit run `name` again: absent (None) no run, bare ([]) every one, else those named."""
    return rerun is not None and (not rerun or name in rerun)


def write_run_info(
    folder: Path, modality: Modality, settings: Settings, runs: dict[str, RunEntry], why: str | None = None
) -> None:
    info = RunInfo(
        modality=modality.key,
        settings=settings,
        settings_why=why,
        runs=runs,
        total_seconds=sum(r.seconds for r in runs.values()),
    )
    atomic_write(folder / RUN_INFO, info.model_dump_json(indent=1))


def outside_repository(parser: argparse.ArgumentParser, path: Path, what: str) -> Path:
    resolved = path.resolve()
    if resolved == ROOT or ROOT in resolved.parents:
        parser.error(f"{what} {path} is inside the repository; it holds images made from the data, keep it outside")
    return path


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `reproduce` and `epsilon_examples` share."""
    parser.add_argument("modality", choices=list(MODALITIES))
    parser.add_argument("--data", type=Path, help=DATA_HELP)
    parser.add_argument("--image-size", type=int, help="px; default 32 for the 28 px MedMNIST files, 128 for kermany")
    parser.add_argument("--test-limit", type=int, help="a stratified seeded subset of the test split (default: all)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "medaudit-reproduction")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "medaudit-reproduction")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"the results folder (default {RESULTS})")


def checked_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Modality, Path, Settings]:
    """(modality, its data file, the settings) from the command line, checked."""
    modality = MODALITIES[args.modality]
    data_path = data_folder(args.data) / modality.file
    if not data_path.is_file():
        parser.error(f"{data_path} not found: give --data DIR (a folder holding {modality.file}) or set {DATA_ENV}")
    if args.test_limit is not None and args.test_limit < MIN_TEST_IMAGES:
        parser.error(f"--test-limit {args.test_limit}: give at least {MIN_TEST_IMAGES} test images")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here")
    outside_repository(parser, args.work, "--work")
    outside_repository(parser, args.cache, "--cache")
    return modality, data_path, Settings(image_size=args.image_size or modality.image_size, test_limit=args.test_limit)


def plan_lines(scenarios: dict[str, Scenario]) -> list[str]:
    """What --dry-run prints: each run and its surrogate rows as the audit will resolve them (`same` from the card)."""
    lines = []
    for name, scenario in scenarios.items():
        arch = name.split("__")[1].split("-")[0]
        rows = dict.fromkeys(
            f"{arch if r.arch == 'same' else r.arch} {r.init} {r.data}" for r in scenario.surrogate_rows()
        )
        lines.append(f"{name}: {len(rows)} rows ({'; '.join(rows)}), ε {scenario.epsilons_pm1}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser)
    parser.add_argument(
        "--why", help="why --image-size or --test-limit differ from the defaults (shown in the document)"
    )
    parser.add_argument("--only", nargs="+", choices=list(EXPERIMENTS), default=list(EXPERIMENTS))
    parser.add_argument(
        "--targets", nargs="+", metavar="ARCH-INIT", help="only these targets, e.g. mobilenet_v2-random"
    )
    parser.add_argument(
        "--rerun",
        nargs="*",
        metavar="RUN",
        help="audit again runs already recorded in the folder: every selected one, or only the RUN folder names given",
    )
    parser.add_argument("--dry-run", action="store_true", help="print each run's surrogate rows and exit")
    args = parser.parse_args(argv)
    modality, data_path, settings = checked_settings(parser, args)
    folder = args.results / modality.key
    selected = {}  # run name -> (experiment, arch, init, scenario)
    for experiment in args.only:
        for arch, init in EXPERIMENTS[experiment]:
            if args.targets and f"{arch}-{init}" not in args.targets:
                continue
            scenario = scenario_for(experiment, modality, settings, DIFFERENT[arch])
            selected[run_name(experiment, arch, init, scenario.target.trained_on)] = (experiment, arch, init, scenario)
    if not selected:
        parser.error(f"--targets {' '.join(args.targets)}: no target of the selected experiments")
    unknown = sorted(set(args.rerun or ()) - set(selected))
    if unknown:
        parser.error(
            f"--rerun {' '.join(unknown)}: not a run of the selected experiments; choose from {', '.join(selected)}"
        )
    if args.dry_run:
        print("\n".join(plan_lines({name: s[3] for name, s in selected.items()})))
        return
    folder.mkdir(parents=True, exist_ok=True)
    runs = previous_runs(folder, settings)  # checked before anything is trained
    earlier = previous_info(folder)
    why = args.why or (earlier.settings_why if earlier else None)
    command = " ".join(["python -m reproduction.reproduce", *(argv if argv is not None else sys.argv[1:])])
    for name, (experiment, arch, init, scenario) in selected.items():
        if not audits_again(name, args.rerun) and recorded(folder, runs, name):
            print(f"{name}: already recorded in {folder / RUN_INFO}, skipped (--rerun {name} to audit it again)")
            continue
        name, entry = run_target(
            modality,
            experiment,
            arch,
            init,
            scenario,
            data_path,
            work=args.work / modality.key,
            cache=args.cache,
            device=args.device,
            results_folder=folder,
            command=command,
        )
        warning = retrained_target(name, entry, runs)
        if warning:
            print(warning)
        runs[name] = entry
        write_run_info(folder, modality, settings, runs, why)  # after every run: an interrupted session keeps times
    print(f"{len(runs)} runs recorded in {folder / RUN_INFO}; render with python -m reproduction.document")


if __name__ == "__main__":
    main()
