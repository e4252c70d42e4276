"""What the results mean: an explanation for every surprising result, in either direction, each citing the
number or the experiment it rests on.

Against the paper: a finding that does not hold, or is mixed. In the other direction: a finding that holds where
the paper's own table for the matched application points the other way, or holds only on arms barely beyond their
control. Between them: a finding the paper saw a direction for that cannot be told apart here, an unmet premise,
and the findings with no transfer to compare, which share one cause (random-init pairs that do not transfer) and
get one paragraph.
"""

from __future__ import annotations

from collections.abc import Mapping

from reproduction import paper
from reproduction.assess import Assessment, Judged
from reproduction.findings import FINDINGS, Finding
from reproduction.fmt import signed
from reproduction.protocol import ARCH_TITLES
from reproduction.runs import ModalityRuns

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


def against(f: Finding, assessed: Mapping[str, Mapping[str, Assessment]], apps: Mapping[str, str]) -> list[str]:
    """The modalities where `f` does not hold or is mixed, or holds although the paper's own column disagrees."""
    parts = []
    for key, per in assessed.items():
        a = per[f.key]
        if a.outcome in ("does not hold", "mixed"):
            contra = "; ".join(_d(j) for j in a.decided("contradicts"))
            verb = "is mixed" if a.outcome == "mixed" else "does not hold"
            parts.append(
                f"Finding {f.key} {verb} on {key}: against it {contra}, while {_paper_column(f, apps[key])}; no experiment "
                "has tested why yet."
            )
        elif a.outcome == "holds" and f.paper_agrees(apps[key]) is False:
            parts.append(f"Finding {f.key} holds on {key} although {_paper_column(f, apps[key])}.")
    return parts


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
        f"{theirs}); here it is unmet where the notes under finding 1 say so."
    )


def section(
    assessed: Mapping[str, Mapping[str, Assessment]],
    loaded: Mapping[str, ModalityRuns],
    study: dict,
    apps: Mapping[str, str],
) -> list[str]:
    """`apps`: modality -> the paper's application column set beside it."""
    lines = ["## What the results mean", "", floor(assessed, loaded, study), ""]
    contrary = [p for f in FINDINGS for p in against(f, assessed, apps)]
    if contrary:
        lines += ["**Against the paper.** " + " ".join(contrary), ""]
    for text in (weak_support(assessed), unresolved(assessed, loaded, apps), silent_arms(assessed)):
        if text:
            lines += [text, ""]
    if any(r.startswith("premise unmet") for per in assessed.values() for r in per["1"].reasons):
        lines += [premise(), ""]
    return lines
