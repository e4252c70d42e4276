"""Render `docs/reproduction.md` (the findings, what they mean, the deviations, provenance) and
`docs/reproduction/appendix.md` (every cell) from the committed runs:

    python -m reproduction.document [--data DIR] [--results DIR] [--out FILE] [--appendix FILE]

Every number is read from the runs' `results.json` (schema 2.0 or 3.x, through `record`'s narrow view), their
per-image score files (the findings' paired intervals are computed from those), `run_info.json`,
`docs/random_init_transfer.json` and `docs/data_size.json`; the paper's numbers come from `paper.py`. The per-image
files hold scores only: the test images' labels and patient ids are re-read from the data files (--data), which
are never committed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from medaudit.core.errors import AuditInputError
from reproduction import appendix, data_size, deviations, epsilon_star, explain, paper, target_seeds
from reproduction.arm_epsilon import RATIO_CONFIDENCE, RELATIVE_AUC, ratio
from reproduction.assess import CHANCE_AUC, FAMILY_CONFIDENCE, MARKS, VERDICT_RESAMPLES, Assessment, Judged
from reproduction.findings import (
    CONTROL_TOLERANCE_AUC,
    FINDINGS,
    IMMUNE_RELATIVE_AUC,
    NOT_FIXED,
    Finding,
    assess_modality,
)
from reproduction.fmt import signed, table
from reproduction.machines import code_grid
from reproduction.prose import wrap
from reproduction.protocol import (
    ARCH_TITLES,
    DATA_HELP,
    DIFFERENT,
    MODALITIES,
    RESULTS,
    ROOT,
    Modality,
    arch_name,
    data_folder,
)
from reproduction.runs import ModalityRuns, load

OUT = ROOT / "docs" / "reproduction.md"
APPENDIX = RESULTS / "appendix.md"
STUDY = ROOT / "docs" / "random_init_transfer.json"
HEADER = Path(__file__).with_name("header.md")


def glance(assessed: Mapping[str, Mapping[str, Assessment]]) -> list[str]:
    """Finding × modality: the outcome, with how its comparisons fell (✓ ✗ ≈, no transfer, not testable)."""
    rows = []
    for f in FINDINGS:
        cells = []
        for per in assessed.values():
            a = per[f.key]
            counts = {
                "✓": len(a.decided("supports")),
                "✗": len(a.decided("contradicts")),
                "≈": len(a.decided("undecided")),
                "∅": a.count("no transfer"),
                "–": a.count("not testable"),
            }
            cells.append(f"**{a.outcome}** ({' '.join(f'{n}{mark}' for mark, n in counts.items() if n)})")
        rows.append([f"{f.key}. {f.statement}", *cells])
    return [
        "## Outcomes at a glance",
        "",
        "Per finding and modality, the outcome and how its comparisons fell: ✓ supports, ✗ contradicts, ≈ undecided "
        "(the three judged), ∅ no transfer, – not testable.",
        "",
        *table(["finding", *assessed], rows),
        "",
    ]


def claim_text(f: Finding) -> str:
    return f"d {'<' if f.claim.side == 'below' else '>'} {f.claim.bound:g}"


def method() -> list[str]:
    alpha = 1 - FAMILY_CONFIDENCE
    return [
        "## How a finding is judged",
        "",
        "Each finding is a claim about a difference d on the **same test images**, checked by several comparisons "
        "(per target architecture and paper attack, at the grid's ε nearest "
        f"{paper.EPS_TABLES:g}); d's interval is a paired bootstrap ({VERDICT_RESAMPLES:,} resamples of images, or "
        "patients where splits are patient-level) of the committed per-image scores. The ensemble of a row's seeds, "
        "fixed before looking at the target, stands for the row. Each comparison is, in this order:",
        "",
        "1. **not testable** (–): a run, row or cell is absent, or a precondition is unmet: a target at chance (clean "
        f"AUC lower bound at most {CHANCE_AUC:g}), a surrogate that did not learn (clean AUC lower bound below its "
        f"run's floor), a `different` row not made under the fixed rule ({NOT_FIXED}), or finding 1's premise;",
        "2. **no transfer** (∅, with each arm's lower bound): the reference arm, the attacker on the target that the "
        "finding says transfers more (the first named), does not beat its own control: the lower bound of its "
        "adversarial-specific drop (control minus adversarial AUC, 95%) is at most 0. An arm the finding says "
        "transfers less may be silent: that is its evidence, and the "
        "comparison is judged. Finding 6 has no arm; 7a's is its attacker at the larger ε, 8's its one attacker;",
        "3. **judged**: by Holm's step-down procedure over the judged comparisons of one finding on one modality, "
        f"family-wise {FAMILY_CONFIDENCE:.0%}: with m open, each interval is taken at 1 − {alpha:.2f}/m (the "
        "confidence shown); ✓ supports when it lies wholly on the claimed side of the bound, ✗ contradicts when "
        "wholly on the other, ≈ otherwise; the decided leave and the rest are judged again.",
        "",
        "The outcome follows one rule for every finding, symmetric in its two directions: all decided comparisons "
        "support it: **holds**; all contradict it: **does not hold**; both: **mixed**; none decided: **cannot be "
        "told apart**; none judged but some without transfer: **no transfer to compare**; none judged otherwise: "
        f"**not testable**. Finding 6 uses the paper's tolerance of {CONTROL_TOLERANCE_AUC:g} AUC, finding 8 its "
        f"{IMMUNE_RELATIVE_AUC:.0%} of clean AUC.",
        "",
        "Per arm, in the order named: `wb`, the attacker's own AUC on its own adversarial images at the arm's ε, "
        "to tell no transfer from a weak attack; `ε*`, its measured ε* for "
        "relative AUC "
        f"{RELATIVE_AUC:g} as the audit reads it, the smallest ε of its grid where the target's relative AUC falls "
        "below that (`>` its largest ε, shown only where some arm breaks), and `÷` the first arm's ε* over the "
        f"second's, the paper-free effect size, with its {RATIO_CONFIDENCE:.0%} interval over paired resamples (`<`, "
        "`>`: bounded by a grid's end, where an arm that holds counts at that ε).",
        "",
    ]


def cell(j: Judged, show_eps: bool = True) -> str:
    """One comparison on one modality: d with its Holm interval and decision, or ∅ with its arms' lower bounds; the
    ε it was read at where that is not the paper's 0.02."""
    off = show_eps and any(abs(e - paper.EPS_TABLES) > 1e-9 for e in j.eps)
    at = f" at ε {'/'.join(f'{e:.3g}' for e in j.eps)}" if off else ""
    if j.status == "judged":
        i = j.interval
        return f"{signed(i.point, i.low, i.high)} {MARKS[j.decision]}{i.confidence:.1%}{at}{arm_notes(j)}"
    if j.status == "no transfer":
        return f"∅ {'/'.join(bound(a.drop.low) for a in j.arms)}{at}{arm_notes(j)}"
    return "–"


def arm_notes(j: Judged) -> str:
    """What the table gives per arm, in the arms' order: the attacker's own white-box AUC (`wb`, the paper's "AUC
    under attack" read on the surrogate itself; "?" where the run did not record it), its ε* for relative AUC 0.8,
    and for two arms the ratio of their ε* (`÷`); nothing for a comparison without arms."""
    if not j.arms:
        return ""
    notes = " wb " + "/".join("?" if a.whitebox_auc is None else f"{a.whitebox_auc:.2f}" for a in j.arms)
    stars = [a.epsilon_star for a in j.arms if a.epsilon_star is not None]
    if len(stars) != len(j.arms) or all(s.point is None for s in stars):
        return notes  # no ε*, or none within the grids: the grids' ends are in the appendix
    notes += " ε* " + "/".join(s.text() for s in stars)
    effect = ratio(*stars).text() if len(stars) == 2 else ""
    return f"{notes} {effect}" if effect else notes


def bound(x: float) -> str:
    """An arm's lower bound, compact: three decimals, four below 0.001 so its sign still shows."""
    return f"{x:+.3f}" if abs(x) >= 0.001 else f"{x:+.4f}"


def finding_section(f: Finding, assessed: Mapping[str, Mapping[str, Assessment]]) -> list[str]:
    theirs = "; ".join(
        f"{app} {', '.join(f'{v:+.2f}' for v in f.paper_d(app))}" if f.paper_d(app) else f"{app} premise unmet"
        for app in paper.APPS
    )
    labels = list(dict.fromkeys(j.label for per in assessed.values() for j in per[f.key].judged))
    by = {(k, j.label): j for k, per in assessed.items() for j in per[f.key].judged}
    show = f.key != "7a"  # 7a compares the grid's two ends, named in its label
    rows = [[label, *(cell(by[(k, label)], show) if (k, label) in by else "–" for k in assessed)] for label in labels]
    reasons: dict[str, list[str]] = {}
    for k, per in assessed.items():
        for b in dict.fromkeys(b for j in per[f.key].judged if j.status == "not testable" for b in j.blockers):
            reasons.setdefault(b, []).append(k)
    detailed: dict[str, list[str]] = {}  # reasons sharing a head ("premise unmet: ...") name it once
    for why, keys in reasons.items():
        if ": " in why:
            head, detail = why.split(": ", 1)
            detailed.setdefault(head, []).append(f"{detail} ({', '.join(keys)})")
    notes = "; ".join(
        [f"{why} ({', '.join(keys)})" for why, keys in reasons.items() if ": " not in why]
        + [f"{head}: {'; '.join(details)}" for head, details in detailed.items()]
    )
    return [
        f"### Finding {f.key}: {f.statement}",
        "",
        f"d = {f.claim.measure}; claim {claim_text(f)}; the paper's d: {theirs}.",
        "",
        *table(["comparison", *assessed], rows),
        "",
        *([f"Not testable (–): {notes}.", ""] if notes else []),
    ]


def different_section(loaded: Mapping[str, ModalityRuns], study: dict) -> list[str]:
    pairs = "; ".join(f"{ARCH_TITLES[a]} → {ARCH_TITLES[b]}" for a, b in DIFFERENT.items())
    stage_name = "pneumo32-converged"  # the study's stage that trained every family
    stage = study[stage_name]
    top = max(c["epsilon_pm1"] for c in stage["cells"])

    def rel(surrogate: str, target: str) -> str:
        (c,) = [
            c
            for c in stage["cells"]
            if (c["surrogate"], c["target"], c["bn"], c["epsilon_pm1"]) == (surrogate, target, "eval", top)
        ]
        return f"{c['relative']['point']:.2f}"

    evidence = "; ".join(
        f"{ARCH_TITLES[t]} target: ResNet-18 {rel('resnet18', t)}, {ARCH_TITLES[t]} {rel(t, t)}" for t in DIFFERENT
    )
    fixed_by: dict[str, dict[str, list[str]]] = {}  # modality -> experiment -> targets' short names
    for c in loaded.values():
        for r in c.runs:
            if r.init == "random" and DIFFERENT.get(r.arch) in (
                r.row_arch("different-random-d1"),
                r.row_arch("different-random-d2"),
            ):
                fixed_by.setdefault(c.folder.name, {}).setdefault(r.experiment, []).append(arch_name(r.arch))
    fixed = [
        f"{modality} " + ", ".join(f"{experiment} vs {'/'.join(targets)}" for experiment, targets in runs.items())
        for modality, runs in fixed_by.items()
    ]
    return [
        "## `different`, fixed in advance",
        "",
        "The reproduction's rule, the same everywhere, is the paper's own design: each target architecture is the "
        f"other's different architecture ({pairs}), never an attacker chosen by measured attack strength; `reproduce` "
        "writes it into the scenarios it runs. The schema 2.0 runs' random-init `different` rows are ResNet-18 instead, chosen because it "
        f"transferred where the depthwise families did not (`docs/random_init_transfer.md`, {stage['image_size']} px, "
        f"PGD at ε {top:g}, relative AUC: {evidence}), so a comparison resting on one is not testable: its attacker "
        "was picked by the outcome the finding measures. Finding 5 reads the pretraining runs (same rows and "
        f"targets) where data_disparity lacks the rule. Random-init runs under the fixed rule: {'; '.join(fixed) or 'none yet'}.",
        "",
    ]


def subset(selection: str) -> str:
    """The record's test selection without the count the line already gives: `a stratified seeded subset (seed 0)`."""
    return re.sub(r"^stratified seeded subset of \d+ ", "a stratified seeded subset ", selection)


def what_was_run(loaded: Mapping[str, ModalityRuns], modalities: Sequence[Modality]) -> list[str]:
    lines = ["## What was run", ""]
    for m in modalities:
        key, c = m.key, loaded[m.key]
        if not c.runs:
            lines.append(f"- **{key}**: no run committed.")
            continue
        d = c.runs[0].record.data
        schemas = sorted({r.schema for r in c.runs})
        lines.append(
            f"- **{key}**, {m.title}: {len(c.runs)} audits, schema {' and '.join(schemas)}, at "
            f"{d.image_size} px; {d.test_size:,} test images, {subset(d.test_selection)}; d1 {d.split_sizes.get('d1', 0):,} "
            f"images; beside the paper's {m.paper_column} column."
        )
    return lines + [""]


def provenance(loaded: Mapping[str, ModalityRuns]) -> list[str]:
    return [
        "## Provenance",
        "",
        "The code version each run recorded (its commit, `+dirty` where the tree had uncommitted changes; `(3.3)` "
        "marks a run's schema where it is not 2.0), then the machines. Wall times, and the model ids that stand for "
        "two trained models, are in the appendix.",
        "",
        *code_grid(dict(loaded)),
        "",
    ]


def render(
    results: Path,
    modalities: Sequence[Modality],
    data_dir: Path,
    *,
    header: str,
    study_path: Path = STUDY,
    data_size_paths: Sequence[Path] = data_size.DATA_SIZE_FILES,
) -> tuple[str, str]:
    """(main text, appendix)."""
    loaded = {m.key: load(results / m.key, data_dir / m.file) for m in modalities}
    present = {k: c for k, c in loaded.items() if c.runs}
    assessed = {k: assess_modality(c) for k, c in present.items()}
    study = json.loads(study_path.read_text())
    body = [header.rstrip("\n"), ""] + what_was_run(loaded, modalities) + different_section(present, study) + method()
    body += glance(assessed) + ["## The findings", ""]
    for f in FINDINGS:
        body += finding_section(f, assessed)
    apps = {m.key: m.paper_column for m in modalities}
    seeds = {k: target_seeds.checks(results / k, data_dir / m.file) for m in modalities if (k := m.key) in present}
    body += explain.section(assessed, present, study, apps, seeds) + deviations.section(present, seeds)
    body += data_size.section(list(data_size_paths), data_dir) + epsilon_star.section(present) + provenance(present)
    main = "\n".join(wrap(body)).rstrip("\n") + "\n"
    extra = appendix.render(
        present,
        [m for m in modalities if m.key in present],
        epsilon_star.appendix(present) + explain.seed_table(seeds, present),
    )
    return main, "\n".join(wrap(extra.splitlines())).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"committed results (default {RESULTS})")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the document (default {OUT})")
    parser.add_argument("--appendix", type=Path, default=APPENDIX, help=f"the per-cell appendix (default {APPENDIX})")
    parser.add_argument("--data", type=Path, help=DATA_HELP)
    parser.add_argument(
        "--data-size", type=Path, nargs="+", default=list(data_size.DATA_SIZE_FILES), help="the data-size JSON files"
    )
    args = parser.parse_args(argv)
    try:
        text, extra = render(
            args.results,
            list(MODALITIES.values()),
            data_folder(args.data),
            header=HEADER.read_text(),
            data_size_paths=args.data_size,
        )
    except AuditInputError as exc:
        print(f"error: {exc}", file=sys.stderr)  # one line, nothing written: a missing or other data file
        sys.exit(2)
    args.out.write_text(text)
    args.appendix.parent.mkdir(parents=True, exist_ok=True)
    args.appendix.write_text(extra)
    print(f"wrote {args.out} and {args.appendix}")


if __name__ == "__main__":
    main()
