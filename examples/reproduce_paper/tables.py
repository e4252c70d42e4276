"""Render docs/reproduction.md from the committed results under docs/reproduction/<modality>/:

    python examples/reproduce_paper/tables.py [--data DIR] [--results DIR] [--out FILE]

Every number is read from the schema-2.0 `results.json` files, their per-image score files (the findings'
paired intervals are computed from those) and `run_info.json`; the paper's numbers come from `paper.py`. The
per-image files hold scores only: the test images' labels and patient ids are re-read from the data files
(--data, as for reproduce.py), which are never committed. A
modality without schema-2.0 results gets a section saying it has not been re-run with the new protocol.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import departures
import deviations
import numpy as np
from committed import Committed, load, retrained, surrogate_fingerprint
from findings import ATTACK_NAMES, CONTROL_TOLERANCE_AUC, FINDINGS, IMMUNE_RELATIVE_AUC, verdicts
from paper_tables import EPS, KINDS, arch_name, duration, table_2, table_3, table_4, table_5
from protocol import DATA_HELP, EXPERIMENTS, INIT_NAMES, MODALITIES, RESULTS, ROOT, SCHEMA_1_NOTE, Modality, data_folder
from verdicts import CHANCE_AUC, FAMILY_CONFIDENCE, PREMISE_CONFIDENCE, VERDICT_RESAMPLES, Verdict, judged_text

from medaudit.errors import AuditInputError

HEADER = Path(__file__).with_name("HEADER.md")
OUT = ROOT / "docs" / "reproduction.md"
MARKS = {"supports": "✓", "contradicts": "✗", "undecided": "≈"}


def epsilon_section(c: Committed) -> list[str]:
    runs = [r for r in c.runs if r.experiment == "perturbation_degree"]
    if not runs:
        return []
    grid = sorted({e for r in runs for ch in r.results.epsilon_choice for e, _ in ch.curve})
    lines = [
        "### ε per modality: mean SSIM over the attackers' images, and what limited ε",
        "",
        "| target | attack | " + " | ".join(f"ε {e:g}" for e in grid) + " | bound | chosen ε | limited by |",
        "|---|---|" + "---|" * len(grid) + "---|---|---|",
    ]
    for run in runs:
        kinds = {x.attack_id: ATTACK_NAMES.get(x.attack.name, x.attack_id) for x in run.results.cells}
        for ch in run.results.epsilon_choice:
            curve = dict(ch.curve)
            chosen = "none" if ch.chosen_epsilon_pm1 is None else f"{ch.chosen_epsilon_pm1:g}"
            limit = (
                "no ε kept the bound"
                if ch.chosen_epsilon_pm1 is None
                else "the SSIM bound"
                if ch.bound_binds
                else "the grid (every ε kept the bound): not perceptibility"
            )
            lines.append(
                f"| {target_label(run)} | {kinds.get(ch.attack_id, ch.attack_id)} | "
                + " | ".join(f"{curve[e]:.3f}" if e in curve else "—" for e in grid)
                + f" | ≥ {ch.bound:g} | {chosen} | {limit} |"
            )
    settings = c.run_info.settings if c.run_info else None
    flags = (
        f" --image-size {settings.image_size}" + (f" --test-limit {settings.test_limit}" if settings.test_limit else "")
        if settings
        else ""
    )
    lines += [
        "",
        "The zoomed examples at every ε (FGSM and PGD, as the paper's Fig. 1): `python examples/reproduce_paper/"
        f"epsilon_examples.py {c.folder.name}{flags}`, after the reproduction, writes them beside its work files; "
        "they are not committed, because they show test images.",
    ]
    lines += ssim_curve_lines(c)
    others = [ch for r in c.runs if r.experiment != "perturbation_degree" for ch in r.results.epsilon_choice]
    if others:
        binds = sum(ch.bound_binds for ch in others)
        lines += [
            "",
            f"In the other experiments (grid {', '.join(f'{e:g}' for e in sorted({e for ch in others for e, _ in ch.curve}))}) "
            f"the SSIM bound limited ε in {binds} of {len(others)} (run, attack) choices and the grid in the other "
            f"{len(others) - binds}.",
        ]
    return lines + [""]


def ssim_curve_lines(c: Committed) -> list[str]:
    """Where the SSIM bound would bind past the paper's grid (ssim_curve.json), if it was measured."""
    if c.ssim is None:
        return []
    lines = [
        "",
        "Past the paper's grid (FGSM, the least subtle attack at equal ε, on each target's seed-0 surrogate):",
        "",
    ]
    for curve in c.ssim.curves:
        shown = ", ".join(f"ε {e:g}: {s:.3f}" for e, s in curve.curve if round(e * 100) % 2 == 0)
        where = (
            f"first below {curve.bound:g} at **ε {curve.first_below_bound:g}**"
            if curve.first_below_bound is not None
            else f"never below {curve.bound:g} up to ε {max(e for e, _ in curve.curve):g}"
        )
        lines.append(f"- {curve.target} ({curve.test_images} test images): mean SSIM {where} ({shown}).")
    if c.ssim.settings != (c.run_info.settings if c.run_info else c.ssim.settings):
        lines.append("- **These curves were measured with other settings than the runs above.**")
    return lines


def target_label(run) -> str:
    return f"{arch_name(run.arch)} {INIT_NAMES.get(run.init, run.init)} ({run.split})"


def whitebox_section(c: Committed) -> list[str]:
    lines = [
        f"### White-box check at ε = {EPS:g}: each attacker's own AUC under its own attack",
        "",
        "| attack | attackers | own AUC median | own AUC max | transfer beat white-box (flagged) | other seeds' relative AUC median / max |",
        "|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        cells = [x for r in c.runs for x in r.cells(kind=kind, eps=EPS)]
        if not cells:
            continue
        own = [x.surrogate_auc_whitebox for x in cells]
        siblings = [x.sibling_relative_auc for x in cells if x.sibling_relative_auc is not None]
        sib = f"{np.median(siblings):.2f} / {max(siblings):.2f}" if siblings else "—"
        lines.append(
            f"| {ATTACK_NAMES[kind]} | {len(cells)} | {np.median(own):.3f} | {max(own):.3f} | "
            f"{sum(x.whitebox_flag for x in cells)} | {sib} |"
        )
    return lines + [""]


FITNESS_CAUSES = (  # (words in a fitness reason, what they mean) — the reasons `medaudit.finalize.fitness` writes
    ("did not learn the task", "did not learn (clean AUC floor)"),
    ("does not break its own model", "its attack does not break it (white-box)"),
    ("do not transfer even to a copy", "its images move no other seed of its row"),
)


def run_of(c: Committed, name: str):
    return next(r for r in c.runs if r.name == name)


def run_label(c: Committed, name: str) -> str:
    run = run_of(c, name)
    return f"{run.experiment} vs {target_label(run)}"


def identity_paragraph(c: Committed) -> list[str]:
    """Whether every model id names one trained model across the modality's runs, and where one names two."""
    split = retrained(c)
    if not split:
        return [
            "**Model identity**: every target and surrogate id names one trained model in all the runs that use it.",
            "",
        ]
    labels = {r.name: run_label(c, r.name) for r in c.runs}

    def where(versions) -> str:
        return "; ".join(f"{v.auc:.3f} in " + ", ".join(labels[n] for n in v.runs) for v in versions)

    targets = [r for r in split if r.kind == "target"]
    by_runs: dict[tuple, list[str]] = {}
    for r in split:
        if r.kind == "surrogate":
            by_runs.setdefault(tuple(v.runs for v in r.versions), []).append(r.id)
    parts = [
        f"target {target_label(run_of(c, r.versions[0].runs[0]))} (clean AUC {where(r.versions)})" for r in targets
    ]
    parts += [
        f"{len(ids)} surrogate ids ({', '.join(ids)}), one version in each of: "
        + "; ".join(", ".join(labels[n] for n in runs) for runs in partition)
        for partition, ids in by_runs.items()
    ]
    return [
        "**Model identity: some ids name two trained models.** Training is deterministic on one machine with one "
        "number of CPU threads, but kernels differ between machine types, so a model trained again after the cache "
        "was lost between sessions has other weights under the same id: "
        + "; ".join(parts)
        + ". Each audit attacks the models it trained or loaded, and each side of a finding's comparison comes from "
        "one run, so no paired difference mixes two versions; tables that set runs side by side (a target's clean AUC "
        "in Table 2 and in Table 3) can show both.",
        "",
    ]


def training_section(c: Committed) -> list[str]:
    # a surrogate id trained again on another machine (identity_paragraph) counts once per trained model
    seen = {(s.id, surrogate_fingerprint(s)): s for r in c.runs for s in r.results.surrogates}
    single = [s for s in seen.values() if not s.member_ids]
    stops = [s.stop_reason for s in single]
    epochs = [s.epochs_run for s in single]
    unfit = [s for s in seen.values() if s.fitness is not None and not s.fitness.fit]
    causes = {
        meaning: sum(any(words in reason for reason in s.fitness.reasons) for s in unfit)
        for words, meaning in FITNESS_CAUSES
    }
    lines = [
        f"**Surrogates**: {len(single)} trained, {stops.count('plateau')} stopped on a validation plateau and "
        f"{stops.count('budget')} at the epoch budget (epochs run {min(epochs)}–{statistics.median(epochs):g}–{max(epochs)}, "
        f"min–median–max); {len(seen) - len(unfit)} of {len(seen)} attackers (seeds and ensembles) fit by the audit's criteria (a finding needs two of them, per attack: see How a finding is judged)"
        + ("; unfit because " + ", ".join(f"{meaning}: {n}" for meaning, n in causes.items() if n) if unfit else "")
        + "."
    ]
    if c.run_info is not None:
        # experiments share targets; one trained again on another machine counts once per trained model
        unique = {
            (e.target.id, e.target.val_auc, e.target.epochs_run): e.target for e in c.run_info.runs.values()
        }.values()
        lines.append(
            f"**Targets**: {len(unique)} trained with the same training section, "
            f"{sum(t.stop_reason == 'plateau' for t in unique)} stopped on a plateau and "
            f"{sum(t.stop_reason == 'budget' for t in unique)} at the budget (epochs run "
            + ", ".join(str(t.epochs_run) for t in unique)
            + ")."
        )
    return [" ".join(lines), ""]


def run_paragraph(c: Committed, modality: Modality) -> list[str]:
    data = c.runs[0].results.data
    sizes = ", ".join(f"{k} {v:,}" for k, v in data.split_sizes.items())
    lines = [
        f"Data `{Path(data.source).name}` (sha256 `{data.sha256[:16]}…`), {data.image_size} px (resampling: "
        f"{data.resampling}), "
        f"{data.label_mapping}; test {data.test_size:,} images ({data.test_selection}, {data.test_positives} positive); "
        f"development splits {sizes}; {'patient' if data.patient_level else 'image'}-level. Paper column shown beside it: "
        f"{modality.paper_column}."
    ]
    if c.run_info is not None:
        info = c.run_info
        machines = sorted(
            {
                f"{e.machine.device}{f' ({e.machine.gpu})' if e.machine.gpu else ''}, "
                f"{e.machine.cpu or 'processor not recorded'}, {e.machine.cpu_threads} threads"
                for e in info.runs.values()
            }
        )
        lines.append(
            f"Settings: {info.settings.image_size} px (default {modality.image_size} px), test limit "
            f"{info.settings.test_limit or 'none (all test images)'}"
            + (f"; why: {info.settings_why}" if info.settings_why else "")
            + ". "
            f"Ran on {'; '.join(machines)}; {len(info.runs)} audits in {duration(info.total_seconds)} (per audit "
            f"{duration(min(e.seconds for e in info.runs.values()))}–{duration(max(e.seconds for e in info.runs.values()))}"
            "; wall-clock as each audit ran: models and cells it found in the cache, trained by an earlier audit "
            "of the modality or by an interrupted attempt at this one, are not counted again)."
        )
    missing = [
        f"{experiment} vs {arch_name(arch)} {INIT_NAMES[init]}"
        for experiment, targets in EXPERIMENTS.items()
        for arch, init in targets
        if c.run(experiment, arch, init) is None
    ]
    if missing:
        lines.append(f"Not yet re-run with the new protocol: {'; '.join(missing)}.")
    if c.old_files:
        lines.append(f"{len(c.old_files)} files of {SCHEMA_1_NOTE} remain in the folder and are not shown.")
    return [" ".join(lines), ""]


# ---------------------------------------------------------------- findings
def verdict_detail(v: Verdict) -> str:
    parts = []
    for j in v.judged:
        if j.decision is None:
            continue
        parts.append(f"{judged_text(j)} {MARKS[j.decision]}")
    blocked = sum(j.decision is None for j in v.judged)
    if blocked:
        parts.append(f"{blocked} of {len(v.judged)} comparisons not testable")
    return "; ".join(parts) or "—"


def findings_section(judged: dict[str, Verdict]) -> list[str]:
    lines = [
        "### The paper's findings, judged here",
        "",
        "| finding | outcome | comparisons: d (interval at the confidence Holm judged it) ✓ supports / ✗ contradicts / ≈ undecided | not testable because | judged, but on attackers whose images move no other seed of their row |",
        "|---|---|---|---|---|",
    ]
    for f in FINDINGS:
        v = judged[f.key]
        lines.append(
            f"| {f.key}. {f.statement} | **{v.outcome}** | {verdict_detail(v)} | {'; '.join(v.reasons) or '—'} | {'; '.join(v.caveats) or '—'} |"
        )
    return lines + [""]


def modality_section(c: Committed, modality: Modality) -> tuple[list[str], dict[str, Verdict] | None]:
    lines = [f"## {modality.title}", ""]
    if not c.runs:
        if c.old_files:
            lines.append(
                f"**Not re-run with the new protocol.** The {len(c.old_files)} results files in "
                f"`docs/reproduction/{modality.key}/` are {SCHEMA_1_NOTE}; they are not shown. Re-run with "
                f"`python examples/reproduce_paper/reproduce.py {modality.key}`."
            )
        else:
            lines.append(f"**Not run yet.** Run `python examples/reproduce_paper/reproduce.py {modality.key}`.")
        return lines + [""], None
    judged = verdicts(c)
    app = modality.paper_column
    lines += run_paragraph(c, modality) + identity_paragraph(c) + training_section(c) + epsilon_section(c)
    lines += table_2(c, app) + table_3(c, app) + table_4(c, app) + table_5(c, app)
    lines += whitebox_section(c) + findings_section(judged)
    return lines, judged


def method_section() -> list[str]:
    alpha = 1 - FAMILY_CONFIDENCE
    lines = [
        "## How a finding is judged",
        "",
        "Each finding is a claim about a difference d between two measurements on the **same test images**; the "
        f"interval of d is a paired percentile bootstrap ({VERDICT_RESAMPLES:,} resamples of images, or of patients "
        "where the split is patient-level) from the committed per-image scores (`medaudit.metrics."
        "bootstrap_paired_difference`). Unless a finding says otherwise, comparisons are made at the paper's "
        f"ε = {EPS:g}, once per target architecture and per paper attack (FGSM, PGD); MI-FGSM is shown in the tables "
        "and not judged. A row of surrogates is represented by the **ensemble of its seeds** (logits averaged), "
        "chosen before looking at the target, rather than by its seed most harmful to the target, which would be "
        "picked on the outcome it is judged by; the tables show every seed beside it.",
        "",
        "A comparison is **not testable** (its reason is given) when a target in it is at chance (clean AUC lower "
        f"95% bound ≤ {CHANCE_AUC:g}: nothing to take away), when its attacker or one of the ensemble's members is "
        "unfit for the comparison's attack (it did not learn: clean test AUC lower bound below the run's floor; or "
        "that attack, run white-box on it at the ε its run chose, does not break it), when a run, row or cell is "
        "missing, or, for finding 1, where ImageNet pre-training does not "
        f"raise the target's clean AUC (IN − R clean AUC not above 0 at {PREMISE_CONFIDENCE:.0%}), the condition "
        "the finding is stated under. Two departures from the audit's own `fitness`, which a release gate needs and "
        "a finding does not: fitness is taken per attack (a surrogate that FGSM does not break white-box can still "
        "carry a PGD comparison), and the audit's third criterion, that an attacker's images move the other seeds "
        "of its row, is not required, because findings 1–5 and 7 compare how far perturbations transfer and "
        "requiring them to transfer to a sibling would assume the answer; the white-box table reports that sibling "
        "transfer beside each attack, and the findings table names every judged comparison whose attacker has no "
        "seed whose images move another seed of its row. Finding 6 needs no fit attacker, since control noise is "
        "the perturbation shuffled.",
        "",
        "The testable comparisons of one finding on one modality form a family, judged by **Holm's step-down "
        f"procedure** at a family-wise confidence of {FAMILY_CONFIDENCE:.0%}: with m comparisons open, each is "
        f"judged on its interval at confidence 1 − {alpha:.2f}/m; those whose interval excludes the claim's bound are "
        "decided (✓ the whole interval on the claimed side, ✗ on the other), and the rest are judged again with m "
        "reduced by the number decided, until a step decides nothing (≈ undecided). Outcome: **does not hold** when "
        "any comparison contradicts the claim; **holds** when one comparison supports a direction (findings 1–5, 7) "
        f"or every comparison supports a bound (findings 6 and 8); **cannot be told apart** otherwise; **not "
        "testable** when no comparison could be judged.",
        "",
        "| finding | d | claim |",
        "|---|---|---|",
    ]
    for f in FINDINGS:
        side = "<" if f.claim.side == "below" else ">"
        scope = "every comparison" if f.claim.every else "a direction"
        lines.append(f"| {f.key}. {f.statement} | {f.claim.measure} | d {side} {f.claim.bound:g} ({scope}) |")
    lines += [
        "",
        f"Finding 6 uses the paper's tolerance of {CONTROL_TOLERANCE_AUC:g} AUC and finding 8 its {IMMUNE_RELATIVE_AUC:.0%} "
        "of clean AUC; both are judged on interval bounds, never on a point.",
        "",
    ]
    return lines


def summary_section(judged: dict[str, dict[str, Verdict] | None]) -> list[str]:
    keys = list(judged)
    lines = [
        "## The findings at a glance",
        "",
        "| finding | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for f in FINDINGS:
        cells = [judged[k][f.key].outcome if judged[k] else "not re-run" for k in keys]
        lines.append(f"| {f.key}. {f.statement} | " + " | ".join(cells) + " |")
    return lines + [""]


def render(results: Path, modalities: Sequence[Modality], header: str, data_dir: Path) -> str:
    loaded = {m.key: load(results / m.key, data_dir / m.file) for m in modalities}
    sections, judged = [], {}
    for m in modalities:
        lines, judged[m.key] = modality_section(loaded[m.key], m)
        sections += lines
    body = [header, "## Deviations from the paper's protocol", ""] + deviations.table(loaded) + [""]
    body += method_section() + summary_section(judged) + departures.section(judged, loaded) + sections
    return "\n".join(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"committed results (default {RESULTS})")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the document to write (default {OUT})")
    parser.add_argument("--data", type=Path, help=DATA_HELP)
    args = parser.parse_args()
    try:
        text = render(args.results, list(MODALITIES.values()), HEADER.read_text(), data_folder(args.data))
    except AuditInputError as exc:
        print(f"error: {exc}", file=sys.stderr)  # one line, nothing written: a missing or other data file
        sys.exit(2)
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
