"""The section "Does transfer grow with training data?", rendered from `docs/data_size.json` (written by
`experiments/data_size.py`): random-init targets and surrogates of one architecture trained on n images per side,
every surrogate's FGSM and PGD images scored on every target of the same n (up to 3 x 3 pairs), relative AUC averaged over
the pairs with a patient-clustered bootstrap interval, beside the control (the same perturbation, pixels shuffled).

The conclusion is read from the numbers: at an ε, transfer grows with n when the largest n's interval of relative
AUC lies wholly below the smallest n's, and shrinks when it lies wholly above; otherwise the two are not apart.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from reproduction import paper
from reproduction.fmt import table
from reproduction.protocol import ROOT, arch_name

DATA_SIZE = ROOT / "docs" / "data_size.json"
TITLE = "## Does transfer grow with training data?"


def _iv(d: dict) -> str:
    return f"{d['point']:.3f} ({d['low']:.3f}–{d['high']:.3f})"


def _blocks(results: dict, arch: str) -> list[dict]:
    """The architecture's blocks, smallest n first (by the images its target side learnt from)."""
    blocks = [b for b in results["blocks"].values() if b["arch"] == arch]
    return sorted(blocks, key=lambda b: b["sides"]["target"]["n_images"])


def _cells(block: dict, attack: str) -> dict[float, dict]:
    return {a["epsilon_pm1"]: a for a in block["aggregate"] if a["attack"] == attack}


def trend(small: dict, large: dict) -> str:
    """`grows` (largest n's relative AUC wholly below the smallest n's), `shrinks` (wholly above) or `not apart`."""
    a, b = small["relative"], large["relative"]
    if b["high"] < a["low"]:
        return "grows"
    return "shrinks" if b["low"] > a["high"] else "not apart"


def verdict(trends: dict[float, str]) -> str:
    """An architecture and attack over every ε: grows, shrinks, mixed, or not apart (no ε tells the sizes apart)."""
    seen = set(trends.values()) - {"not apart"}
    return "mixed" if len(seen) > 1 else seen.pop() if seen else "not apart"


def _provenance(results: dict) -> str:
    runs = []
    for run in results.get("runs", []):
        code, machine = run.get("code", {}), run.get("machine", {})
        commit = f"{code.get('commit', '?')[:10]}{'+dirty' if code.get('dirty') else ''}"
        runs.append(
            f"`{commit}` on {machine.get('processor', 'processor not recorded')} "
            f"({machine.get('torch_threads', '?')} torch threads), blocks {', '.join(run.get('blocks', [])) or 'none'}"
        )
    return "Made by " + "; ".join(runs) + "." if runs else "No run recorded its code or machine."


def arch_table(results: dict, arch: str) -> tuple[list[str], list[tuple[str, str | None]], int]:
    """One architecture: relative AUC per attack, n and ε, the control's range over ε; then per attack its
    one-sentence conclusion and verdict (None: one size only); and the largest n per side."""
    blocks = _blocks(results, arch)
    grid = results["settings"]["epsilons_pm1"]
    rows, conclusions = [], []
    for attack in results["settings"]["attacks"]:
        for b in blocks:
            cells = _cells(b, attack)
            control = [c["relative_control"]["point"] for c in cells.values()]
            sides = f"{b['sides']['target']['n_images']:,}"
            pairs = str(max((c["n_pairs"] for c in cells.values()), default=0))
            rel = [_iv(cells[e]["relative"]) if e in cells else "—" for e in grid]
            ctrl = f"{min(control):.3f}–{max(control):.3f}" if control else "—"
            rows.append([attack.upper(), sides, pairs, *rel, ctrl])
        conclusions.append(conclusion(blocks, arch, attack, grid))
    head = ["attack", "n (d1)", "pairs", *(f"ε {e:g}" for e in grid), "control, over ε"]
    return table(head, rows), conclusions, max(b["sides"]["target"]["n_images"] for b in blocks)


def conclusion(blocks: list[dict], arch: str, attack: str, grid: list[float]) -> tuple[str, str | None]:
    """(sentence, verdict) comparing the largest n with the smallest at each ε."""
    if len(blocks) < 2:
        return f"{arch_name(arch)} {attack.upper()}: one size only, no trend.", None
    small, large = _cells(blocks[0], attack), _cells(blocks[-1], attack)
    trends = {e: trend(small[e], large[e]) for e in grid if e in small and e in large}
    grows = [f"{e:g}" for e, t in trends.items() if t == "grows"]
    shrinks = [f"{e:g}" for e, t in trends.items() if t == "shrinks"]
    n0, n1 = (b["sides"]["target"]["n_images"] for b in (blocks[0], blocks[-1]))
    text = (
        f"{arch_name(arch)} {attack.upper()}, {n0:,} → {n1:,} images: the largest n below the smallest at "
        f"{len(grows)} of {len(trends)} ε{' (' + ', '.join(grows) + ')' if grows else ''}"
        f"{f', above at {len(shrinks)} (' + ', '.join(shrinks) + ')' if shrinks else ''}: "
        + ("the sizes are not apart." if verdict(trends) == "not apart" else f"transfer {verdict(trends)}.")
    )
    return text, verdict(trends)


def section(path: Path = DATA_SIZE) -> list[str]:
    if not path.is_file():
        return [
            TITLE,
            "",
            "The data-size experiment (`experiments/data_size.py`) has not been committed yet: "
            f"`{path.relative_to(ROOT) if ROOT in path.parents else path}` is absent, so this section has no numbers.",
            "",
        ]
    results = json.loads(path.read_text())
    settings = results["settings"]
    lines = [
        TITLE,
        "",
        f"`experiments/data_size.py`: random-init targets (d1) and surrogates (d2) of one architecture learn from n "
        f"images per side of `{settings['data_file']}` at {settings['image_size']} px; each surrogate's images are "
        f"scored on each target of the same n, relative AUC averaged over the pairs with a 95% interval "
        f"({settings['n_test']} test images, resampled by patient), beside the control. A trend is read where the "
        "largest n's interval lies wholly below (grows) or above the smallest n's. " + _provenance(results),
        "",
    ]
    missing = [
        f"{arch_name(arch)} at n {label}"
        for arch, labels in settings["grid"].items()
        for label in labels
        if f"{arch}-n{label}" not in results["blocks"]
    ]
    if missing:
        seeds = {len(side_seeds) for _, side_seeds in settings["sides"].values()}
        per_side = "/".join(map(str, sorted(seeds)))
        pairs = math.prod(len(side_seeds) for _, side_seeds in settings["sides"].values())
        design = f"{per_side} seeds per side, {pairs} pairs per size"
        lines += [f"**Not run yet** of the design ({design}): {', '.join(missing)}.", ""]
    if any(c["n_pairs"] == 1 for b in results["blocks"].values() for c in b["aggregate"]):
        lines += [
            "Where a size has one pair, its interval covers the sampling of test patients only, not the spread "
            "between training seeds, and two sizes are compared by whether their intervals overlap.",
            "",
        ]
    if settings.get("epochs_cap") is not None:
        lines += [f"**A smoke check, not the experiment**: training was capped at {settings['epochs_cap']} epochs.", ""]
    verdicts, largest = [], 0
    for arch in settings["grid"]:
        if not _blocks(results, arch):
            continue
        rows, conclusions, n = arch_table(results, arch)
        largest = max(largest, n)
        verdicts += [(arch, attack, word) for attack, (_, word) in zip(settings["attacks"], conclusions) if word]
        lines += [f"**{arch_name(arch)}**, relative AUC (95% interval):", "", *rows, ""]
        lines += [" ".join(text for text, _ in conclusions), ""]
    return lines + [meaning(verdicts, list(settings["grid"]), largest, extremes(results)), ""]


def extremes(results: dict) -> tuple[tuple[float, float], tuple[float, float]]:
    """(ε, lowest relative AUC over every block and attack) at the smallest and at the largest ε of the grid."""
    grid = results["settings"]["epsilons_pm1"]
    cells = [c for b in results["blocks"].values() for c in b["aggregate"]]
    return tuple((e, min(c["relative"]["point"] for c in cells if c["epsilon_pm1"] == e)) for e in (grid[0], grid[-1]))


def agreement(verdicts: list[tuple[str, str, str]], planned: list[str]) -> str:
    """What ours says about growth, naming the architecture and attack pairs it rests on and the architectures of the
    design it lacks (`verdicts`: (arch, attack, verdict) where two sizes were run)."""
    if not verdicts:
        return "Ours has one size only so far, so it cannot say"
    named = [(f"{arch_name(a)} {k.upper()}", v) for a, k, v in verdicts]
    grows = [name for name, v in named if v == "grows"]
    others = [f"{name} {v}" for name, v in named if v != "grows"]
    ours = f"Ours agrees in {', '.join(grows)}" if grows else "Ours shows no growth"
    if others:
        ours += f" ({', '.join(others)})"
    run = list(dict.fromkeys(a for a, _, _ in verdicts))
    lacking = [arch_name(a) for a in planned if a not in run]
    rests = f"; this rests on {len(run)} of the design's {len(planned)} architectures"
    return ours + (rests + f" ({', '.join(lacking)}: fewer than two sizes run)" if lacking else "")


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
