"""Our numbers beside the paper's Tables 2-5, one modality at a time.

Each row shows the paper's value, ours in the paper's style (mean over FGSM and PGD and over the target
architectures) twice — from each target's median seed and from the row's seed ensemble — then, per target and
attack, the seeds' spread (min/median/max) and the ensemble, how many of the row's surrogates are fit, and the
ensemble under MI-FGSM, the strong transfer attack the paper did not run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import paper
from committed import Committed
from findings import ATTACK_NAMES, PAPER_ATTACKS
from protocol import ARCH_NAMES, INIT_NAMES

from medaudit.results import CellRecord, IntervalRecord

EPS = paper.EPS_TABLES
KINDS = ("fgsm", "pgd", "mifgsm")  # the paper's two attacks, then the strong transfer attack it did not run


def fmt_iv(iv: IntervalRecord) -> str:
    return f"{iv.point:.2f} ({iv.low:.2f}–{iv.high:.2f})"


def pct(x: float) -> str:
    return f"{100 * x:.0f}"


def duration(seconds: float) -> str:
    return (
        f"{seconds:.0f} s"
        if seconds < 120
        else f"{seconds / 60:.0f} min"
        if seconds < 7200
        else f"{seconds / 3600:.1f} h"
    )


def arch_name(arch: str) -> str:
    return ARCH_NAMES.get(arch, arch)


# ---------------------------------------------------------------- one table row: seeds and ensemble
def row_cells(c: Committed, experiment: str, target_init: str, row: str, kind: str, eps: float):
    """[(target arch, seed cells sorted by relative AUC, ensemble cell or None)] over the experiment's targets."""
    out = []
    for run in (r for r in c.runs if r.experiment == experiment and r.init == target_init):
        cells = run.cells(row=row, kind=kind, eps=eps)
        seeds = sorted((x for x in cells if len(x.member_ids) == 1), key=lambda x: x.relative_auc.point)
        ensemble = next((x for x in cells if len(x.member_ids) > 1), None)
        out.append((run.arch, seeds, ensemble))
    return out


def median_seed(seeds: Sequence[CellRecord]) -> CellRecord:
    return seeds[(len(seeds) - 1) // 2]  # the middle one (the lower middle for an even count): a real seed


def paper_style(cells: Sequence[CellRecord]) -> str:
    """The paper's summary: mean adversarial AUC (mean of the cells' relative AUC, %)."""
    if not cells:
        return "—"
    auc, rel = np.mean([x.auc_adversarial.point for x in cells]), np.mean([x.relative_auc.point for x in cells])
    return f"{auc:.2f} ({pct(rel)})"


def row_text(c: Committed, experiment: str, target_init: str, row: str) -> list[str]:
    """Cells of a table row: median seed, ensemble, per target × attack spread, fitness, MI-FGSM."""
    entries = [
        (arch, kind, s, e)
        for kind in PAPER_ATTACKS
        for arch, s, e in row_cells(c, experiment, target_init, row, kind, EPS)
    ]
    medians = paper_style([median_seed(s) for _, _, s, _ in entries if s])
    ensembles = paper_style([e for _, _, _, e in entries if e])
    spread = "; ".join(
        f"{arch_name(a)} {ATTACK_NAMES[k]} {'/'.join(pct(x.relative_auc.point) for x in (s[0], median_seed(s), s[-1]))}"
        + (f" · ens {pct(e.relative_auc.point)}" if e else "")
        for a, k, s, e in entries
        if s
    )
    fit = []
    for run in (r for r in c.runs if r.experiment == experiment and r.init == target_init):
        seeds = [s for s in run.results.surrogates if s.row_id == row and not s.member_ids]
        ens = [s for s in run.results.surrogates if s.row_id == row and s.member_ids]
        if not seeds:
            continue
        fit_seeds = sum(bool(s.fitness and s.fitness.fit) for s in seeds)
        ens_mark = "".join("✓" if s.fitness and s.fitness.fit else "✗" for s in ens)
        fit.append(f"{arch_name(run.arch)} {fit_seeds}/{len(seeds)}" + (f" + ens {ens_mark}" if ens else ""))
    strong = "; ".join(
        f"{arch_name(a)} {pct(e.relative_auc.point)}"
        for a, _, e in row_cells(c, experiment, target_init, row, "mifgsm", EPS)
        if e
    )
    return [medians, ensembles, spread or "—", ", ".join(fit) or "—", strong or "—"]


def clean_text(c: Committed, experiment: str, init: str) -> str:
    parts = [
        f"{arch_name(r.arch)} {fmt_iv(r.results.cells[0].auc_clean)}"
        for r in c.runs
        if r.experiment == experiment and r.init == init and r.results.cells
    ]
    return "; ".join(parts) or "—"


ROW_HEAD = (
    "ours: median seed | ours: ensemble | relative AUC % per target × attack: seeds min/median/max · ensemble | "
    "fit surrogates: seeds + ensemble | MI-FGSM ensemble, relative %"
)
ROW_RULE = "---|---|---|---|---"


def _paper(value: tuple[float, int]) -> str:
    return f"{value[0]:.2f} ({value[1]})"


def table_3(c: Committed, app: str) -> list[str]:
    lines = [
        f"### Table 3 — pre-training × architecture (all on d1; ε = {EPS:g}; mean over FGSM/PGD and both targets)",
        "",
        f"| arch | target | surrogate | paper {app} | {ROW_HEAD} |",
        f"|---|---|---|---|{ROW_RULE}|",
    ]
    for init in ("imagenet", "random"):
        clean = f"{paper.T3_CLEAN[init][app]:.2f}"
        lines.append(f"| no attack | {INIT_NAMES[init]} | – | {clean} | {clean_text(c, 'pretraining', init)} | | | | |")
    for (arch, target_init, surrogate_init), theirs in paper.T3.items():
        cells = row_text(c, "pretraining", target_init, f"{arch}-{surrogate_init}-d1")
        lines.append(
            f"| {arch} | {INIT_NAMES[target_init]} | {INIT_NAMES[surrogate_init]} | {_paper(theirs[app])} | "
            + " | ".join(cells)
            + " |"
        )
    return lines + [""]


def table_4(c: Committed, app: str) -> list[str]:
    lines = [
        f"### Table 4 — data disparity (random init; target on d1; ε = {EPS:g})",
        "",
        f"| arch | surrogate data | paper {app} | {ROW_HEAD} |",
        f"|---|---|---|{ROW_RULE}|",
        f"| no attack | – | {paper.T4_CLEAN[app]:.2f} | {clean_text(c, 'data_disparity', 'random')} | | | | |",
    ]
    for (arch, split), theirs in paper.T4.items():
        cells = row_text(c, "data_disparity", "random", f"{arch}-random-{split}")
        lines.append(f"| {arch} | {split} | {_paper(theirs[app])} | " + " | ".join(cells) + " |")
    return lines + [""]


def table_5(c: Committed, app: str) -> list[str]:
    lines = [
        f"### Table 5 — small targets (target on d1/10, surrogates on d2, matched initialisation; ε = {EPS:g})",
        "",
        f"| arch | init | paper {app} | {ROW_HEAD} |",
        f"|---|---|---|{ROW_RULE}|",
    ]
    for init in ("imagenet", "random"):
        clean = f"{paper.T5_CLEAN[init][app]:.2f}"
        lines.append(f"| no attack | {INIT_NAMES[init]} | {clean} | {clean_text(c, 'small_data', init)} | | | | |")
    for (arch, init), theirs in paper.T5.items():
        cells = row_text(c, "small_data", init, f"{arch}-{init}-d2")
        lines.append(f"| {arch} | {INIT_NAMES[init]} | {_paper(theirs[app])} | " + " | ".join(cells) + " |")
    return lines + [""]


def _curve_ssim(c: Committed, experiment: str, kind: str, eps: float) -> float | None:
    """Mean SSIM at `eps` of the attack `kind`, from the runs' epsilon-choice curves (mean over attackers)."""
    values = []
    for run in (r for r in c.runs if r.experiment == experiment):
        ids = {x.attack_id for x in run.cells(kind=kind)}
        values += [
            s for ch in run.results.epsilon_choice if ch.attack_id in ids for e, s in ch.curve if abs(e - eps) < 1e-9
        ]
    return float(np.mean(values)) if values else None


def table_2(c: Committed, app: str) -> list[str]:
    runs = [r for r in c.runs if r.experiment == "perturbation_degree"]
    grid = sorted({x.epsilon_pm1 for r in runs for x in r.results.cells})
    lines = [
        "### Table 2 — ε sweep (random-init target and surrogates, same architecture, all on d1; mean over targets)",
        "",
        "| attack | series | " + " | ".join(f"ε {e:g}" for e in grid) + " |",
        "|---|---|" + "---|" * len(grid),
    ]
    for kind in KINDS:
        per_eps = [
            [(s, e) for _, s, e in row_cells(c, "perturbation_degree", "random", "same-random-d1", kind, eps)]
            for eps in grid
        ]
        if not any(s for entries in per_eps for s, _ in entries):
            continue
        medians, ens, ctrl = [], [], []
        for entries in per_eps:
            seeds = [x for s, _ in entries for x in s]
            mids = [median_seed(s).auc_adversarial.point for s, _ in entries if s]
            medians.append(
                f"{np.mean(mids):.2f} [{min(x.auc_adversarial.point for x in seeds):.2f}–"
                f"{max(x.auc_adversarial.point for x in seeds):.2f}]"
                if seeds
                else "—"
            )
            ensemble = [e for _, e in entries if e]
            ens.append(f"{np.mean([e.auc_adversarial.point for e in ensemble]):.2f}" if ensemble else "—")
            ctrl.append(f"{np.mean([e.auc_control.point for e in ensemble]):.2f}" if ensemble else "—")
        name = ATTACK_NAMES[kind]
        lines.append(f"| {name} | ours adversarial, median seed [seed range] | " + " | ".join(medians) + " |")
        lines.append(f"| {name} | ours adversarial, ensemble | " + " | ".join(ens) + " |")
        lines.append(f"| {name} | ours control (ensemble's perturbation shuffled) | " + " | ".join(ctrl) + " |")
        if kind in paper.T2[app]:
            adv, control = paper.T2[app][kind]
            theirs = dict(zip(paper.EPSILONS, zip(adv, control)))
            for label, i in (("adversarial", 0), ("control", 1)):
                values = [f"{theirs[e][i]:.2f}" if e in theirs else "—" for e in grid]
                lines.append(f"| {name} | paper {app} {label} | " + " | ".join(values) + " |")
        ssim = [_curve_ssim(c, "perturbation_degree", kind, e) for e in grid]
        lines.append(f"| {name} | mean SSIM | " + " | ".join("—" if s is None else f"{s:.3f}" for s in ssim) + " |")
    clean = clean_text(c, "perturbation_degree", "random")
    return lines + ["", f"Clean AUC of these targets: {clean} (paper {app}: {paper.T2_CLEAN[app]:.2f}).", ""]
