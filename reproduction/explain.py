"""What the results mean: an explanation for every surprising result, in either direction, each citing the
number or the experiment it rests on.

Against the paper: a finding that does not hold, or is mixed. In the other direction: a finding that holds where
the paper's own table for the matched application points the other way, or holds only on arms barely beyond their
control. Between them: a finding the paper saw a direction for that cannot be told apart here, an unmet premise,
and the findings with no transfer to compare, which share one cause (random-init pairs that do not transfer) and
get one paragraph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medaudit.attackers.target_training import TARGET_SEED_OFFSET
from reproduction import paper
from reproduction.assess import Assessment, Judged
from reproduction.findings import FINDINGS, Finding
from reproduction.fmt import signed
from reproduction.protocol import ARCH_TITLES, INIT_NAMES, arch_name, run_name
from reproduction.runs import ModalityRuns
from reproduction.target_seeds import EXPERIMENT, FINDING, SeedChecks, labelled_seed

WEAK_ARM = 0.005  # an arm whose drop's lower bound is below this beats its control only barely (AUC units)


def _d(j: Judged) -> str:
    i = j.interval
    return f"{j.label} {signed(i.point, i.low, i.high)} at {i.confidence:.1%}"


def floor(assessed: Mapping[str, Mapping[str, Assessment]], loaded: Mapping[str, ModalityRuns], study: dict) -> str:
    """One paragraph: how many comparisons have no transfer to compare, why, and what the study found."""
    tested = [
        (m, j) for m, per in assessed.items() for a in per.values() for j in a.judged if j.status != "not testable"
    ]
    none = [j for _, j in tested if j.status == "no transfer"]
    arms = {(m, a.run, a.label): a for m, j in tested for a in j.arms}.values()
    by_init: dict[str, list[bool]] = {}
    for a in arms:
        by_init.setdefault("ImageNet" if "-imagenet-" in a.row else "random-init", []).append(a.transfers)
    counts = ", ".join(f"{sum(v)} of {len(v)} {init} arms" for init, v in sorted(by_init.items()))
    rr = [rel for _, rel in paper.T3[("same", "random", "random")].values()]
    affected = {
        f.key: [m for m, a in assessed.items() if a[f.key].outcome == "no transfer to compare"] for f in FINDINGS
    }
    listed = "; ".join(f"{k} on {', '.join(v)}" for k, v in affected.items() if v) or "none"
    return (
        f"**No transfer to compare.** Of {len(tested)} comparisons that could be tested, {len(none)} have a reference "
        f"arm that does not lower the target's AUC beyond its own shuffled perturbation; {counts} beat their control. "
        f"Random-init ensembles leave random-init targets {_random_pairs(loaded)} of clean AUC at ε ≈ 0.02 (Table 3's "
        f"R/R row), the paper's {min(rr)}–{max(rr)}%. With no transfer to compare, these findings are neither "
        f"supported nor contradicted: {listed}; an unmoved target counts neither as immune (8) nor as a tie (3, 4). "
        + _study(study)
    )


def _random_pairs(loaded: Mapping[str, ModalityRuns]) -> str:
    values: dict[str, list[float]] = {}
    for key, c in loaded.items():
        for run in (r for r in c.runs if r.experiment == "pretraining" and r.init == "random"):
            for kind in ("fgsm", "pgd"):
                cells = run.cells(row="same-random-d1", kind=kind, eps=run.nearest(kind))
                values.setdefault(key, []).extend(x.relative_auc.point for x in cells if len(x.member_ids) > 1)

    def span(v: list[float]) -> str:
        low, high = f"{min(v):.0%}", f"{max(v):.0%}"
        return low if low == high else f"{low}–{high}"

    return ", ".join(f"{k} {span(v)}" for k, v in values.items() if v) or "(no run)"


def _study(study: dict) -> str:
    """The strongest random-init transfer `docs/random_init_transfer.md` found over all its stages."""
    best = None
    for name, stage in study.items():
        if name == "settings":
            continue
        cells = [c for c in stage["cells"] if c["bn"] == "eval"]
        top = max(c["epsilon_pm1"] for c in cells)
        for c in (c for c in cells if c["epsilon_pm1"] == top):
            if best is None or c["relative"]["point"] < best[1]["relative"]["point"]:
                best = (stage, c)
    stage, c = best
    r = c["relative"]
    return (
        "`docs/random_init_transfer.md` varied training length, BatchNorm, resolution and the surrogate's family; "
        f"its strongest transfer, {ARCH_TITLES[c['surrogate']]} → {ARCH_TITLES[c['target']]} at "
        f"{stage['image_size']} px, ε {c['epsilon_pm1']:g}, kept {r['point']:.2f} ({r['low']:.2f}–{r['high']:.2f}) "
        "of clean AUC. Untested: the paper's 256–512 px images."
    )


def _paper_column(f: Finding, app: str) -> str:
    values = ", ".join(f"{v:+.2f}" for v in f.paper_d(app))
    return f"the paper's {app} table gives d {values}" if values else f"the paper's {app} table cannot say"


def against(
    f: Finding,
    assessed: Mapping[str, Mapping[str, Assessment]],
    apps: Mapping[str, str],
    seeds: Mapping[str, Sequence[SeedChecks]],
) -> list[str]:
    """The modalities where `f` does not hold or is mixed, or holds although the paper's own column disagrees; a
    contradiction is followed by what retraining its target from other seeds showed (`target_seeds`), if it ran."""
    parts = []
    for key, per in assessed.items():
        a = per[f.key]
        if a.outcome in ("does not hold", "mixed"):
            contradicting = a.decided("contradicts")
            contra = "; ".join(_d(j) for j in contradicting)
            verb = "is mixed" if a.outcome == "mixed" else "does not hold"
            targets = {j.label.split(",")[0] for j in contradicting}  # e.g. "MNv2 R"
            checked = [c for c in seeds.get(key, ()) if f.key == FINDING and _target(c) in targets]
            why = " ".join(seed_sentence(c) for c in checked) or "No experiment has tested why yet."
            parts.append(
                f"Finding {f.key} {verb} on {key}: against it {contra}, while {_paper_column(f, apps[key])}. {why}"
            )
        elif a.outcome == "holds" and f.paper_agrees(apps[key]) is False:
            parts.append(f"Finding {f.key} holds on {key} although {_paper_column(f, apps[key])}.")
    return parts


def _target(c: SeedChecks) -> str:
    return f"{arch_name(c.arch)} {INIT_NAMES[c.init]}"


def _span(values: Sequence[float]) -> str:
    return (
        f"{min(values):+.3f}"
        if f"{min(values):+.3f}" == f"{max(values):+.3f}"
        else f"{min(values):+.3f} to {max(values):+.3f}"
    )


def _n(count: int, verb: str) -> str:
    """`1 contradicts`, `2 contradict`."""
    return f"{count} {verb}{'s' if count == 1 else ''}"


def seed_sentence(c: SeedChecks) -> str:
    """What the target trained again from several seeds, against one set of surrogates, says about finding 2."""
    measured = [x for x in c.comparisons if x.interval_at is not None]  # a point does not depend on the confidence
    by_attack: dict[str, list[float]] = {}
    for x in measured:
        by_attack.setdefault(x.label.split(", ")[1].split(":")[0], []).append(x.interval_at(0.95).point)
    points = " and ".join(f"{_span(v)} under {attack}" for attack, v in by_attack.items())
    short = c.comparisons[0].label.split(": ")[1].split(",")[0]  # e.g. "R − IN"
    supports, contradicts = len(c.assessment.decided("supports")), len(c.assessment.decided("contradicts"))
    on = len({labelled_seed(j.label) for j in c.assessment.decided("contradicts")})
    first, second = short.split(" − ")
    if supports:
        verdict = (
            f"the outcome depends on the trained model ({_n(supports, 'support')} the finding, "
            f"{_n(contradicts, 'contradict')} it)."
        )
    elif contradicts:
        verdict = (
            f"none supports the finding, {_n(contradicts, 'contradict')} it ({on} of {len(c.seeds)} targets): "
            f"{first} surrogates move no seed's target decidedly more than {second} ones, so the finding's failure is "
            "not one model's."
        )
    else:
        verdict = "none decides either way: the contradiction rests on one trained model."
    return (
        f"Retrained from seeds {c.seeds[0]}–{c.seeds[-1]} against the same surrogates, {_target(c)} gives {short} "
        f"{points} ({c.assessment.count('no transfer')} of {len(c.assessment.judged)} without transfer): {verdict}"
    )


def _committed(c: SeedChecks, runs: ModalityRuns) -> str:
    """How the committed run's own target of this configuration trained, beside seed 1000 here (if it ran)."""
    name = run_name(EXPERIMENT, c.arch, c.init, "d1")
    entry = runs.run_info.runs.get(name) if runs.run_info else None
    if entry is None or TARGET_SEED_OFFSET not in c.seeds:
        return ""
    k = c.seeds.index(TARGET_SEED_OFFSET)
    same = (round(entry.target.val_auc, 3), entry.target.epochs_run) == (round(c.val_auc[k], 3), c.epochs[k])
    return (
        f" The committed {name} target, seed {TARGET_SEED_OFFSET} on {entry.machine.cpu or 'an unrecorded CPU'}, "
        f"trained to validation AUC {entry.target.val_auc:.3f} in {entry.target.epochs_run} epochs; seed "
        f"{TARGET_SEED_OFFSET} here to {c.val_auc[k]:.3f} in {c.epochs[k]}"
        + (": the same model, as far as training shows." if same else ": the same spec gave another model.")
    )


def seed_table(seeds: Mapping[str, Sequence[SeedChecks]], loaded: Mapping[str, ModalityRuns]) -> list[str]:
    """The appendix section: per seed, the retrained target and finding 2's comparisons on it, with each arm's drop
    (control minus adversarial AUC, 95%); a comparison without transfer shows its difference at 95%."""
    lines = []
    for key, checks in seeds.items():
        for c in checks:
            lines += [
                f"## {key}: finding 2 on {_target(c)} targets from {len(c.seeds)} seed{'s' if len(c.seeds) > 1 else ''}",
                "",
                "`python -m reproduction.target_seeds`: the `pretraining` scenario's `same` rows, FGSM and PGD, one set "
                f"of surrogates, on {', '.join(c.cpus)}. Judged together under finding 2's rule: "
                f"**{c.assessment.outcome}**.{_committed(c, loaded[key])}",
                "",
                "| seed | validation AUC (epochs) | clean AUC | comparison | first arm's drop | second arm's drop | "
                "difference | decision |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for j, comparison in zip(c.assessment.judged, c.comparisons, strict=True):
                k = c.seeds.index(labelled_seed(j.label))
                i = j.interval or comparison.interval_at(0.95)
                drops = " | ".join(signed(a.drop.point, a.drop.low, a.drop.high) for a in comparison.arms)
                lines.append(
                    f"| {c.seeds[k]} | {c.val_auc[k]:.3f} ({c.epochs[k]}) | {c.clean_auc[k]:.3f} | "
                    f"{j.label.split(', seed')[0]} | {drops} | {signed(i.point, i.low, i.high)} at "
                    f"{i.confidence:.1%} | {j.decision or j.status} |"
                )
            lines.append("")
    return lines


def weak_support(assessed: Mapping[str, Mapping[str, Assessment]]) -> str | None:
    """Findings that hold only on arms barely beyond their control."""
    weak = []
    for f in FINDINGS:
        for key, per in assessed.items():
            a = per[f.key]
            lowest = min((j.arms[0].drop.low for j in a.decided("supports") if j.arms), default=None)
            if a.outcome == "holds" and lowest is not None and lowest < WEAK_ARM:
                weak.append(f"{f.key} on {key} ({len(a.decided('supports'))} decided, weakest {lowest:+.4f})")
    if not weak:
        return None
    return (
        f"**Support from barely transferring arms.** These outcomes hold, but the weakest reference arm of their "
        f"supporting comparisons beats its control by a lower bound under {WEAK_ARM:g} AUC: {'; '.join(weak)}."
    )


def unresolved(
    assessed: Mapping[str, Mapping[str, Assessment]], loaded: Mapping[str, ModalityRuns], apps: Mapping[str, str]
) -> str | None:
    """Findings the paper's own column supports that cannot be told apart here, with the widest interval."""
    parts = []
    for f in FINDINGS:
        for key, per in assessed.items():
            a = per[f.key]
            if a.outcome == "cannot be told apart" and f.paper_agrees(apps[key]):
                width = max(j.interval.high - j.interval.low for j in a.judged if j.interval)
                size = loaded[key].runs[0].record.data.test_size
                parts.append(f"{f.key} on {key} ({size:,}, {width:.3f})")
    if not parts:
        return None
    return (
        "**Cannot be told apart where the paper's column points one way.** Every judged interval straddles the "
        f"bound (test images, widest interval): {'; '.join(parts)}. The differences are smaller than these test sets "
        "resolve."
    )


def silent_arms(assessed: Mapping[str, Mapping[str, Assessment]]) -> str | None:
    """The outcomes the silent arms decide: per finding, the modalities whose outcome would differ had every silent
    arm set its comparison aside, and what it would then be."""
    parts = []
    for f in FINDINGS:
        changed: dict[str, list[str]] = {}
        for key, per in assessed.items():
            a = per[f.key]
            if a.decided_by_silent_arms:
                changed.setdefault(f"{a.outcome_any_arm} (now {a.outcome})", []).append(key)
        parts += [f"{f.key} on {', '.join(keys)}: {what}" for what, keys in changed.items()]
    if not parts:
        return None
    return (
        "**Decided by a silent arm.** These outcomes rest on judged comparisons whose second arm does not beat its "
        f"control; had such comparisons been set aside they would read: {'; '.join(parts)}."
    )


def premise() -> str:
    """Finding 1's premise: the paper's clean AUCs; ours, with their intervals, are in finding 1's notes."""
    theirs = ", ".join(
        f"{app} {paper.T3_CLEAN['imagenet'][app]:.2f}/{paper.T3_CLEAN['random'][app]:.2f}" for app in paper.APPS
    )
    return (
        f"**Finding 1's premise**, pre-training raising clean AUC, holds in the paper's Oph and Rad tables (IN/R "
        f"{theirs}); here it is unmet where finding 1's notes say so."
    )


def section(
    assessed: Mapping[str, Mapping[str, Assessment]],
    loaded: Mapping[str, ModalityRuns],
    study: dict,
    apps: Mapping[str, str],
    seeds: Mapping[str, Sequence[SeedChecks]],
) -> list[str]:
    """`apps`: modality -> the paper's application column set beside it; `seeds`: its `target_seeds` checks."""
    lines = ["## What the results mean", "", floor(assessed, loaded, study), ""]
    contrary = [p for f in FINDINGS for p in against(f, assessed, apps, seeds)]
    if contrary:
        lines += ["**Against the paper.** " + " ".join(contrary), ""]
    for text in (weak_support(assessed), unresolved(assessed, loaded, apps), silent_arms(assessed)):
        if text:
            lines += [text, ""]
    if any(r.startswith("premise unmet") for per in assessed.values() for r in per["1"].reasons):
        lines += [premise(), ""]
    return lines
