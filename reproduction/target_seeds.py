"""Whether a contradicted finding 2 follows the one target it was measured on:

    python -m reproduction.target_seeds pneumonia [--data DIR] --target mobilenet_v2-random --seeds 1000 1001 1002

The reproduction measures every finding on one target per configuration, trained from seed 1000 (`train_target`).
This trains that target again from each seed given (same data, split and training section: only the training seed
changes) and audits each with the `pretraining` scenario cut to what finding 2 compares: the `same`-architecture
rows of both initialisations, FGSM and PGD, transfer tier only. The surrogates do not depend on the target, so every
target faces the same attackers (trained once, then cached). Each audit is copied as `reproduce` copies one, to
`docs/reproduction/<modality>/target_seeds/`, with its own run info; `python -m reproduction.document` reads them
(`checks`) and judges finding 2 over the seeds with the finding's own rule.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from medaudit.core.errors import AuditInputError
from medaudit.scenario.threat_model import Scenario, SurrogateGrid
from reproduction import reproduce
from reproduction.assess import Assessment, Comparison, assess
from reproduction.findings import BY_KEY, PAPER_ATTACKS
from reproduction.protocol import DIFFERENT, EXPERIMENTS, INIT_NAMES, RUN_INFO, arch_name
from reproduction.runs import ModalityRuns, Run, load

EXPERIMENT = "pretraining"  # finding 2's experiment
FINDING = "2"
FOLDER = "target_seeds"  # under the modality's results folder; `runs.load` does not descend into it
OTHER_INIT = {"imagenet": "random", "random": "imagenet"}


def cut(scenario: Scenario) -> Scenario:
    """The experiment's scenario with only what finding 2 compares: `same` rows, FGSM and PGD (transfer only)."""
    surrogates = scenario.surrogates
    if not isinstance(surrogates, SurrogateGrid):
        raise ValueError(f"{EXPERIMENT}: expected a surrogate grid, got rows")
    return scenario.model_copy(
        update={
            "surrogates": surrogates.model_copy(update={"arch": ("same",)}),
            "attacks": tuple(a for a in scenario.attacks if a.name in PAPER_ATTACKS),
        }
    )


def arch_label(run: Run) -> str:
    """The start of finding 2's labels for this run's target, e.g. "MNv2 R," (the finding builds both inits)."""
    return f"{arch_name(run.arch)} {INIT_NAMES[run.init]},"


def seed_of(run: Run) -> int:
    """The training seed a run's folder names (`...-s1001`)."""
    return int(run.name.rsplit("-s", 1)[1])


def labelled_seed(label: str) -> int:
    """The seed a comparison's label ends with (`..., seed 1001`), as `checks` writes it."""
    return int(label.rsplit("seed ", 1)[1])


@dataclass(frozen=True)
class SeedChecks:
    """Finding 2 measured again on one target configuration trained from several seeds."""

    arch: str
    init: str
    seeds: tuple[int, ...]
    clean_auc: tuple[float, ...]  # each target's clean test AUC, in seed order
    val_auc: tuple[float, ...]  # each target's best validation AUC (its run info), in seed order
    epochs: tuple[int, ...]  # epochs each target trained to its plateau, in seed order
    cpus: tuple[str, ...]  # the processors the targets were trained and audited on
    comparisons: tuple[Comparison, ...]  # matched minus mismatched initialisation, per seed and paper attack
    assessment: Assessment  # finding 2's rule (paired intervals, Holm) over all of them


def checks(modality_folder: Path, data_file: Path | None) -> list[SeedChecks]:
    """Every target configuration checked from several seeds in `modality_folder/target_seeds`, in name order."""
    folder = modality_folder / FOLDER
    if not folder.is_dir():
        return []
    loaded = load(folder, data_file)
    runs, info = loaded.runs, loaded.run_info
    if info is None or set(info.runs) != {r.name for r in runs}:
        raise AuditInputError(f"{folder / RUN_INFO}: missing, or it lists other runs than the folder holds")
    out = []
    for arch, init in dict.fromkeys((r.arch, r.init) for r in runs):
        mine = sorted((r for r in runs if (r.arch, r.init) == (arch, init)), key=seed_of)
        matched, other = f"same-{init}-d1", f"same-{OTHER_INIT[init]}-d1"
        build = BY_KEY[FINDING].build
        comparisons = []
        for run in mine:
            found = [c for c in build(ModalityRuns(folder, (run,), None)) if c.label.startswith(arch_label(run))]
            comparisons += [replace(c, label=f"{c.label}, seed {seed_of(run)}") for c in found]
        if len(comparisons) != len(mine) * len(PAPER_ATTACKS):
            raise ValueError(f"{folder}: expected {matched} − {other} per seed and attack, got {len(comparisons)}")
        out.append(
            SeedChecks(
                arch,
                init,
                tuple(seed_of(r) for r in mine),
                tuple(r.record.cells[0].auc_clean.point for r in mine),
                tuple(info.runs[r.name].target.val_auc for r in mine),
                tuple(info.runs[r.name].target.epochs_run for r in mine),
                tuple(dict.fromkeys(info.runs[r.name].machine.cpu or "unrecorded" for r in mine)),
                tuple(comparisons),
                assess(comparisons, BY_KEY[FINDING].claim),
            )
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    reproduce.add_common_arguments(parser)
    targets = [f"{a}-{i}" for a, i in EXPERIMENTS[EXPERIMENT]]
    parser.add_argument("--target", required=True, choices=targets, metavar="ARCH-INIT", help=", ".join(targets))
    parser.add_argument(
        "--seeds", nargs="+", type=int, required=True, help="training seeds; 1000 is the reproduction's"
    )
    args = parser.parse_args(argv)
    modality, data_path, settings = reproduce.checked_settings(parser, args)
    arch, init = args.target.rsplit("-", 1)
    folder = args.results / modality.key / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    runs = reproduce.previous_runs(folder, settings)
    scenario = cut(reproduce.scenario_for(EXPERIMENT, modality, settings, DIFFERENT[arch]))
    command = " ".join(["python -m reproduction.target_seeds", *(argv if argv is not None else sys.argv[1:])])
    for seed in args.seeds:
        name, entry = reproduce.run_target(
            modality,
            EXPERIMENT,
            arch,
            init,
            scenario,
            data_path,
            work=args.work / modality.key / FOLDER,
            cache=args.cache,
            device=args.device,
            results_folder=folder,
            command=command,
            seed=seed,
        )
        runs[name] = entry
        reproduce.write_run_info(folder, modality, settings, runs, "finding 2 on targets from other seeds")
    print(f"{len(runs)} runs recorded in {folder / RUN_INFO}; render with python -m reproduction.document")


if __name__ == "__main__":
    main()
