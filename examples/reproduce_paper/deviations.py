"""The deviations table: every way this reproduction's protocol differs from the paper's, one row each.

The paper's side is quoted from the paper (`paper.py`); ours is read from the committed results of each
modality (or, for a modality not re-run yet, from `reproduce.py`'s defaults, marked so); the likely effect
is argued in words, without numbers, since numbers belong to the tables.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import paper
from committed import Committed, retrained
from protocol import ARCH_NAMES, INIT_NAMES, MODALITIES
from verdicts import FAMILY_CONFIDENCE


def _grouped(values: dict[str, str]) -> str:
    """`a, b: X; c: Y` — modalities that share a value are named together."""
    by_value: dict[str, list[str]] = {}
    for key, value in values.items():
        by_value.setdefault(value, []).append(key)
    return "; ".join(f"{', '.join(keys)}: {value}" for value, keys in by_value.items())


def _each(loaded: dict[str, Committed], describe: Callable[[Committed], str], default: Callable[[str], str]) -> str:
    """One value per modality: from its runs if it has any, else `default(key)` (not re-run yet)."""
    return _grouped({k: describe(c) if c.runs else default(k) for k, c in loaded.items()})


def _not_run(_: str) -> str:
    return "not re-run yet"


def _split_sizes(c: Committed) -> str:
    data = c.runs[0].results.data
    sizes = ", ".join(f"{s} {data.split_sizes[s]:,}" for s in ("d1", "d2", "d1/10", "d2/2") if s in data.split_sizes)
    return f"{sizes}; test {data.test_size:,}"


def _different(c: Committed) -> str:
    pairs = {
        f"{ARCH_NAMES.get(r.arch, r.arch)} {INIT_NAMES[s.init]} target → {ARCH_NAMES.get(s.arch, s.arch)}"
        for r in c.runs
        for s in r.results.surrogates
        if s.row_id.startswith("different-") and not s.member_ids and s.init == r.init
    }
    targets = ", ".join(sorted({ARCH_NAMES.get(r.arch, r.arch) for r in c.runs}))
    return f"targets {targets}; `different` surrogates: {', '.join(sorted(pairs)) or 'none run'}"


def _training(c: Committed) -> str:
    t = c.runs[0].results.scenario.training
    seen = {s.id: s for r in c.runs for s in r.results.surrogates if not s.member_ids}
    stops = [s.stop_reason for s in seen.values()]
    epochs = [s.epochs_run for s in seen.values()]
    targets = list({e.target.id: e.target for e in c.run_info.runs.values()}.values()) if c.run_info else []
    target_text = (
        f"; targets: {sum(e.stop_reason == 'plateau' for e in targets)} plateau, "
        f"{sum(e.stop_reason == 'budget' for e in targets)} budget"
        if targets
        else ""
    )
    return (
        f"Adam, lr {t.learning_rate:g}, × {t.lr_plateau_factor:g} after {t.lr_plateau_patience} stale epochs, stop after {t.patience} "
        f"(plateau; stale epochs count after {t.min_steps_before_plateau} optimiser steps) or at {t.epochs} epochs "
        f"(budget); surrogates: {stops.count('plateau')} plateau, "
        f"{stops.count('budget')} budget, epochs {min(epochs)}–{statistics.median(epochs):g}–{max(epochs)}"
        f"{target_text}"
    )


def _seeds(c: Committed) -> str:
    rows = [(r, row) for r in c.runs for row in dict.fromkeys(s.row_id for s in r.results.surrogates)]
    counts = sorted({sum(s.row_id == row and not s.member_ids for s in r.results.surrogates) for r, row in rows})
    ensembles = sum(any(s.row_id == row and s.member_ids for s in r.results.surrogates) for r, row in rows)
    return (
        f"{'/'.join(map(str, counts))} seeds per surrogate row; the seeds' ensemble attacks in {ensembles} of "
        f"{len(rows)} (run, row) pairs; one target per configuration"
        + ("" if not any(r.kind == "target" for r in retrained(c)) else ", but some trained twice (Model identity)")
    )


def _machines(c: Committed) -> str:
    if c.run_info is None:
        return "not recorded"
    seen = {
        f"{m.device}{f' ({m.gpu})' if m.gpu else ''}, torch {m.torch}{f', {m.cpu}' if m.cpu else ''}"
        for m in (e.machine for e in c.run_info.runs.values())
    }
    return "; ".join(sorted(seen))


def rows(loaded: dict[str, Committed]) -> list[tuple[str, str, str, str]]:
    """(what, the paper, here, likely effect), one per deviation."""

    def first(c: Committed):
        return c.runs[0].results

    def default_size(key: str) -> str:
        return f"{MODALITIES[key].image_size} px (reproduce.py default; not re-run yet)"

    return [
        (
            "Architectures",
            paper.ARCHITECTURES,
            _each(loaded, _different, _not_run),
            "Depthwise nets (Lite0, MNv2) trained from random initialisation transfer little, even to another seed "
            "of themselves (docs/random_init_transfer.md), so random-init same-architecture rows can transfer less "
            "than the paper's; such surrogates fail the fitness check and the comparisons resting on them are not "
            "testable. `different` means ResNet-18 for random init, for that reason.",
        ),
        (
            "Task and labels",
            paper.TASKS,
            _each(loaded, lambda c: first(c).data.label_mapping, _not_run),
            "Binary tasks on other data: absolute AUCs are not comparable with the paper's; directions are.",
        ),
        (
            "Image size",
            paper.RESOLUTION,
            _each(
                loaded,
                lambda c: f"{first(c).data.image_size} px (resampling: {first(c).data.resampling})",
                default_size,
            ),
            "Small images hide fine structure, so targets are weaker; the same ε is a larger share of the "
            "detail that is left, and its perceptibility (SSIM) differs from the paper's.",
        ),
        (
            "Development and test set sizes",
            "; ".join(f"{app}: " + ", ".join(f"{k} {v:,}" for k, v in s.items()) for app, s in paper.T1_SPLITS.items()),
            _each(loaded, _split_sizes, _not_run),
            "Far fewer images: weaker models and wider intervals; d1/10 targets may not learn at all (then they are "
            "at chance and not testable).",
        ),
        (
            "Training length and stopping",
            paper.TRAINING,
            _each(loaded, _training, _not_run),
            "Both stop on a validation plateau; a model that reached the budget instead may be undertrained "
            "(counted here).",
        ),
        (
            "Validation split",
            paper.VALIDATION,
            _each(
                loaded,
                lambda c: (
                    f"one fixed split per development split and data seed ({first(c).scenario.training.val_fraction:.0%} "
                    "of its patients, or images where there are no patient ids), shared by every model trained on it"
                ),
                _not_run,
            ),
            "As the paper; none expected.",
        ),
        (
            "Augmentation and class balance",
            paper.AUGMENTATION,
            _each(
                loaded,
                lambda c: (
                    f"{', '.join(first(c).scenario.training.augment) or 'none'}, for every model; "
                    f"class-balanced sampling {'on' if first(c).scenario.training.balanced_sampling else 'off'}"
                ),
                _not_run,
            ),
            "Small: the paper chose augmentation per application, here one set serves every modality.",
        ),
        (
            "Splits",
            paper.SPLITS,
            _each(
                loaded,
                lambda c: "patient-level" if first(c).data.patient_level else "image-level (no patient ids)",
                _not_run,
            ),
            "Image-level splits can put one patient in d1 and d2, which understates data disparity (findings 3-4).",
        ),
        (
            "Test images",
            paper.TEST,
            _each(loaded, lambda c: f"{first(c).data.test_size:,} ({first(c).data.test_selection})", _not_run),
            "A subset widens intervals; paired comparisons on the same images keep them usable.",
        ),
        (
            "ε",
            paper.EPSILON,
            _each(
                loaded,
                lambda c: (
                    f"Tables 3–5 and the findings at ε = {paper.EPS_TABLES:g}, copied from the paper; ε is also "
                    f"chosen per modality under mean SSIM ≥ {first(c).scenario.perceptibility.min_mean_ssim:g} (section ε per "
                    "modality), which the gate and the fitness check use"
                ),
                _not_run,
            ),
            "At other image sizes the copied ε is not equally subtle; the SSIM section shows where it stands.",
        ),
        (
            "Example images",
            paper.EXAMPLES,
            "`epsilon_examples.py MODALITY` renders that page per modality and target (FGSM and PGD, every ε, 4× "
            "centre crops, SSIM per image) outside the repository; it is not published here, because the images are "
            "copies of the data, which may not be committed. Mean SSIM per ε is in each modality's ε section",
            "None on the numbers; a reader runs one command to look at the images.",
        ),
        (
            "Repeats",
            paper.MODELS_PER_CONFIGURATION,
            _each(loaded, _seeds, _not_run),
            "Seeds show the spread a single surrogate hides; the ensemble, a stronger attacker than one seed, "
            "represents each row in the findings.",
        ),
        (
            "Attacks",
            paper.ATTACKS,
            "the same, plus MI-FGSM with input diversity and translation invariance, reported apart and left out of "
            "the paper-style averages and the findings",
            "None on the paper's columns.",
        ),
        (
            "Dermoscopy data",
            "no dermoscopy; pathology (PCam) is the column it is placed beside",
            "DermaMNIST re-encoded once as JPEG (quality 75) before we received it",
            "JPEG artefacts are of the order of the ε studied; do not compare absolute numbers with work on the "
            "official file.",
        ),
        (
            "Hardware",
            paper.HARDWARE,
            _each(loaded, _machines, _not_run),
            "Floating-point only, but it changes the models: training is deterministic on one machine type with "
            "one number of CPU threads, and kernels differ between machine types, so a model trained again in a "
            "later session, its cache lost, has other weights under the same id (each modality's Model identity "
            "paragraph names such models).",
        ),
        (
            "Statistics",
            "AUC point values; the text reports no intervals or tests",
            _each(
                loaded,
                lambda c: (
                    f"bootstrap {first(c).scenario.bootstrap.confidence:.0%} intervals per cell; paired bootstrap "
                    f"differences with Holm's correction (family-wise {FAMILY_CONFIDENCE:.0%}) for the findings"
                ),
                _not_run,
            ),
            "Verdicts can be 'cannot be told apart' where the paper reports a direction.",
        ),
    ]


def table(loaded: dict[str, Committed]) -> list[str]:
    lines = ["| | the paper | here | likely effect on the numbers |", "|---|---|---|---|"]
    lines += [f"| {what} | {theirs} | {ours} | {effect} |" for what, theirs, ours, effect in rows(loaded)]
    return lines
