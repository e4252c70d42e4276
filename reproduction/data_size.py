"""The section "Does transfer grow with training data?", rendered from the data-size experiment's committed JSON
(`experiments/data_size.py`): random-init targets and surrogates of one architecture trained on n images per side,
every surrogate's FGSM and PGD images scored on every target of the same n.

Where a file's blocks kept per-image scores, the curve is judged by the findings' one rule (`reproduction.growth`:
paired intervals over seed pairs, Holm across sizes, ε inside the SSIM budget); the test labels are re-read from the
data file. Blocks without them (the 64-px Kermany run, one seed pair per size) are shown, and said not to be judged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from medaudit.core.errors import AuditInputError
from medaudit.core.files import sha256_file
from medaudit.core.metrics import auc
from reproduction import paper
from reproduction.assess import MARKS, Judged
from reproduction.fmt import signed, table
from reproduction.growth import MIN_PAIRS, SSIM_BUDGET, Pair, SizePoint, budget_epsilon, judge, reading
from reproduction.protocol import ROOT, arch_name

DATA_SIZE = ROOT / "docs" / "data_size.json"  # Kermany, 64 px: one seed pair per size, aggregates only
DATA_SIZE_28PX = ROOT / "docs" / "data_size_pneumonia.json"  # PneumoniaMNIST, 32 px: per-image scores, judged
DATA_SIZE_FILES = (DATA_SIZE, DATA_SIZE_28PX)
TITLE = "## Does transfer grow with training data?"


def _blocks(results: dict, arch: str) -> list[dict]:
    """The architecture's blocks, smallest n first (by the images its target side learnt from)."""
    blocks = [b for b in results["blocks"].values() if b["arch"] == arch]
    return sorted(blocks, key=lambda b: b["sides"]["target"]["n_images"])


def _provenance(results: dict) -> str:
    """`Made by <commit> on <machine> (blocks ...)`, one clause per code and machine, its blocks together."""
    by: dict[str, list[str]] = {}
    for run in results.get("runs", []):
        code, machine = run.get("code", {}), run.get("machine", {})
        commit = f"{code.get('commit', '?')[:10]}{'+dirty' if code.get('dirty') else ''}"
        processor, threads = machine.get("processor", "processor not recorded"), machine.get("torch_threads", "?")
        who = f"`{commit}` on {processor} ({threads} torch threads)"
        by.setdefault(who, []).extend(run.get("blocks", []))
    runs = [f"{who}, blocks {', '.join(blocks) or 'none'}" for who, blocks in by.items()]
    return "Made by " + "; ".join(runs) + "." if runs else "No run recorded its code or machine."


def _scores(block: dict, folder: Path) -> dict[str, np.ndarray]:
    """A block's per-image scores, checked against the hash its JSON recorded."""
    path = folder / block["per_image"]["path"]
    if not path.is_file() or sha256_file(path) != block["per_image"]["sha256"]:
        raise AuditInputError(f"{path}: absent or not the per-image file its data-size JSON recorded")
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def labels(results: dict, data_dir: Path, test_index: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The test images' labels and, where the run resampled patients, their patient ids: re-read from the data file
    the run used (never committed)."""
    path = data_dir / results["settings"]["data_file"]
    if not path.is_file():
        raise AuditInputError(f"{path}: the data-size experiment's data file is needed to re-read its test labels")
    by_patient = results["settings"]["bootstrap"]["groups"] == "test patient ids"
    with np.load(path) as npz:
        y = npz["test_labels"].reshape(-1).astype(np.int64)[test_index]
        return y, npz["test_patient_ids"][test_index] if by_patient else None


def size_points(blocks: list[dict], scores: list[dict[str, np.ndarray]], attack: str, eps: float) -> list[SizePoint]:
    """Each block at one attack and ε as the rule reads it: its seed pairs, surrogates' clean AUC and epochs."""
    points = []
    for b, arrays in zip(blocks, scores):
        pairs = tuple(
            Pair(
                arrays[f"clean/t{t}"],
                arrays[f"{attack}/eps{eps:g}/s{s}/t{t}/adversarial"],
                arrays[f"{attack}/eps{eps:g}/s{s}/t{t}/control"],
            )
            for s in b["seeds"]["surrogate"]
            for t in b["seeds"]["target"]
        )
        surrogates = [m for m in b["models"] if m["role"] == "surrogate"]
        points.append(
            SizePoint(
                b["sides"]["target"]["n_images"],
                pairs,
                tuple(m["test_auc"] for m in surrogates),
                tuple(m["epochs_run"] for m in b["models"]),
            )
        )
    return points


def judged_table(
    results: dict, arch: str, folder: Path, data_dir: Path
) -> tuple[list[str], list[tuple[str, str, str]]]:
    """One architecture under the rule, per attack at its SSIM-budget ε: per size its pairs, surrogate clean AUC,
    epochs, level and d against the smallest size with its Holm interval; then each attack's outcome and reading."""
    blocks = _blocks(results, arch)
    scores = [_scores(b, folder) for b in blocks]
    if any(not np.array_equal(s["test_index"], scores[0]["test_index"]) for s in scores):
        raise AuditInputError(f"{arch}: the data-size blocks were scored on different test images")
    y, groups = labels(results, data_dir, scores[0]["test_index"])
    rows, sentences, outcomes = [], [], []
    for attack in results["settings"]["attacks"]:
        ssim: dict[float, list[float]] = {}
        for b in blocks:
            for a in b["attacks"]:
                if a["attack"] == attack:
                    ssim.setdefault(a["epsilon_pm1"], []).append(a["ssim"])
        eps = budget_epsilon(ssim)
        if eps is None:
            sentences.append(f"{arch_name(arch)} {attack.upper()}: no ε of the grid keeps mean SSIM ≥ {SSIM_BUDGET:g}.")
            continue
        points = size_points(blocks, scores, attack, eps)
        a = judge(y, groups, points, eps)
        by = {j.label: j for j in a.judged}
        for i, point in enumerate(sorted(points, key=lambda q: q.n_images)):
            j = by.get(f"n {point.n_images:,} − n {points[0].n_images:,}") if i else None
            level = np.mean([auc(y, q.adversarial) / auc(y, q.clean) for q in point.pairs])
            d = "reference" if not i else _decided(j)
            rows.append(
                [
                    attack.upper(),
                    f"{eps:g}",
                    f"{point.n_images:,}",
                    str(len(point.pairs)),
                    f"{min(point.surrogate_clean_auc):.3f}–{max(point.surrogate_clean_auc):.3f}",
                    f"{min(point.epochs)}–{max(point.epochs)}",
                    f"{level:.3f}",
                    d,
                ]
            )
        outcomes.append((arch, attack, a.outcome))
        sentences.append(f"{arch_name(arch)} {attack.upper()}: **{a.outcome}**. {reading(a, points, eps)}")
    head = ["attack", "ε", "n (d1)", "pairs", "surrogate clean AUC", "epochs", "relative AUC", "d vs smallest n"]
    return table(head, rows) + [""] + [" ".join(sentences)], outcomes


def _decided(j: Judged | None) -> str:
    if j is None or j.interval is None:
        return "∅" if j is not None and j.status == "no transfer" else "–"
    return f"{signed(j.interval.point, j.interval.low, j.interval.high)} {MARKS[j.decision]}{j.interval.confidence:.1%}"


def part(path: Path, data_dir: Path) -> tuple[list[str], list[tuple[str, str, str]], int]:
    """One committed data-size file: judged by the rule where its blocks kept per-image scores, else described
    and said not to be judged; with the outcomes and the largest n per side."""
    results = json.loads(path.read_text())
    settings = results["settings"]
    lines = [
        f"**{settings['data_file']}, {settings['image_size']} px** ({settings['n_test']} test images). "
        + _provenance(results),
        "",
    ]
    missing = [
        f"{arch_name(arch)} at n {label}"
        for arch, labels_ in settings["grid"].items()
        for label in labels_
        if f"{arch}-n{label}" not in results["blocks"]
    ]
    if missing:
        seeds = {len(side_seeds) for _, side_seeds in settings["sides"].values()}
        pairs = math.prod(len(side_seeds) for _, side_seeds in settings["sides"].values())
        design = f"{'/'.join(map(str, sorted(seeds)))} seeds per side, {pairs} pairs per size"
        lines += [f"**Not run yet** of the design ({design}): {', '.join(missing)}.", ""]
    if settings.get("epochs_cap") is not None:
        lines += [f"**A smoke check, not the experiment**: training was capped at {settings['epochs_cap']} epochs.", ""]
    outcomes, largest = [], 0
    for arch in settings["grid"]:
        blocks = _blocks(results, arch)
        if not blocks:
            continue
        largest = max(largest, max(b["sides"]["target"]["n_images"] for b in blocks))
        if not _unjudged(blocks):
            rows, judged = judged_table(results, arch, path.parent, data_dir)
            outcomes += judged
            lines += [f"**{arch_name(arch)}** under the rule:", "", *rows, ""]
            continue
        lines += [
            f"**{arch_name(arch)}**, not judged: {_unjudged(blocks)}; its tables: `python experiments/data_size.py "
            f"--out docs/{path.name} --render`.",
            "",
        ]
    return lines, outcomes, largest


def _unjudged(blocks: list[dict]) -> str:
    """Why the rule cannot judge an architecture's blocks."""
    if len(blocks) < 2:
        return "one size only"
    why = [] if all("per_image" in b for b in blocks) else ["its blocks kept no per-image scores for a paired interval"]
    fewest = min(c["n_pairs"] for b in blocks for c in b["aggregate"])
    if fewest < MIN_PAIRS:
        why.append(f"a size has {fewest} seed pair(s), fewer than the rule's {MIN_PAIRS}")
    return "; ".join(why)


def section(paths: list[Path], data_dir: Path) -> list[str]:
    present = [p for p in paths if p.is_file()]
    if not present:
        names = ", ".join(f"`{p.relative_to(ROOT) if ROOT in p.parents else p}`" for p in paths)
        return [
            TITLE,
            "",
            f"The data-size experiment (`experiments/data_size.py`) has not been committed yet: {names} absent, so "
            "this section has no numbers.",
            "",
        ]
    lines = [
        TITLE,
        "",
        "`experiments/data_size.py`: random-init targets (d1) and surrogates (d2) of one architecture learn from n "
        "images per side; each surrogate's images are scored on each target of the same n. The findings' rule "
        f"judges the curve (`reproduction.growth`): per size the mean over seed pairs (at least {MIN_PAIRS}) of "
        "relative AUC; d = that level at n minus at the smallest n, paired on the same bootstrap resamples of the "
        "same test images; Holm across sizes, claim d < 0 (transfer grows); the larger size's attackers must beat "
        f"their control; one ε per attack, the largest where every surrogate's mean SSIM stays ≥ {SSIM_BUDGET:g}.",
        "",
    ]
    outcomes, largest, extreme = [], 0, []
    for path in present:
        part_lines, part_outcomes, n = part(path, data_dir)
        lines += part_lines
        outcomes += part_outcomes
        largest = max(largest, n)
        extreme.append(extremes(json.loads(path.read_text())))
    planned = [a for p in present for a in json.loads(p.read_text())["settings"]["grid"]]
    return lines + [meaning(outcomes, list(dict.fromkeys(planned)), largest, extreme[0]), ""]


def extremes(results: dict) -> tuple[tuple[float, float], tuple[float, float]]:
    """(ε, lowest relative AUC over every block and attack) at the smallest and at the largest ε of the grid."""
    grid = results["settings"]["epsilons_pm1"]
    cells = [c for b in results["blocks"].values() for c in b["aggregate"]]
    return tuple((e, min(c["relative"]["point"] for c in cells if c["epsilon_pm1"] == e)) for e in (grid[0], grid[-1]))


def agreement(outcomes: list[tuple[str, str, str]], planned: list[str]) -> str:
    """What ours says about growth, naming the architecture and attack pairs the rule judged, and the architectures
    of the design it lacks (`outcomes`: (arch, attack, the rule's outcome))."""
    if not outcomes:
        return "Ours has no curve judged by the rule yet, so it cannot say"
    named = [(f"{arch_name(a)} {k.upper()}", o) for a, k, o in outcomes]
    grows = [name for name, o in named if o == "holds"]
    others = [f"{name} {o}" for name, o in named if o != "holds"]
    ours = f"Ours agrees in {', '.join(grows)}" if grows else "Ours shows no growth"
    if others:
        ours += f" ({', '.join(others)})"
    run = list(dict.fromkeys(a for a, _, _ in outcomes))
    lacking = [arch_name(a) for a in planned if a not in run]
    rests = f"; this rests on {len(run)} of the design's {len(planned)} architectures"
    return ours + (rests + f" ({', '.join(lacking)}: not judged)" if lacking else "")


def meaning(
    verdicts: list[tuple[str, str, str]],
    planned: list[str],
    largest: int,
    extreme: tuple[tuple[float, float], tuple[float, float]],
) -> str:
    """What the trend means for an audit of a target trained on tens of thousands of images."""
    rr = [rel for _, rel in paper.T3[("same", "random", "random")].values()]
    small = [rel for _, rel in paper.T5[("same", "random")].values()]
    d1 = [s["d1"] for s in paper.T1_SPLITS.values()]
    implied = (
        f"The paper's Tables 3 and 5 imply that transfer grows with data: random-init pairs on d1 "
        f"({min(d1):,}–{max(d1):,} images) keep {min(rr)}–{max(rr)}% of clean AUC, while random-init targets on "
        f"d1/10 keep {min(small)}–{max(small)}%."
    )
    (e0, r0), (e1, r1) = extreme
    return (
        f"{implied} {agreement(verdicts, planned)}, and our sizes stop at {largest:,} images per side. Near-immunity "
        f"here depends on ε as much as on data: at ε {e0:g} every size and attack keeps at least {r0:.3f} of clean "
        f"AUC, at ε {e1:g} the most affected keeps {r1:.3f}. For a medaudit user whose target learnt from tens of "
        "thousands of images, a near-immune random-init target measured here at small ε is no evidence about theirs: "
        "if transfer grows with data, theirs is easier to reach, so audit it with surrogates of its own scale and ε "
        "up to the bound."
    )
