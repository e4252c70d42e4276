"""The report's prose that depends on the run: data provenance, limitations, the paper's 6.6 recommendations,
and the standards traceability table (REGULATORY.md)."""

from __future__ import annotations

import math

from medaudit.report.tables import admissible, is_admissible, noise_rows
from medaudit.report.units import grey
from medaudit.results import AuditResults, DataRecord, fmt_interval

TRACEABILITY = [
    (
        "1 Verdict card",
        "prEN 18282 (draft): objective criteria to decide whether a vulnerability goal is met; "
        "acceptance-table form of 510(k) summaries (lower 95% bound vs threshold)",
    ),
    (
        "2 Identification and scope",
        "FDA draft guidance on AI-enabled device software functions, Jan 2025 (per "
        "summaries): model evasion, model card; EU AI Act Art. 15(5); OWASP ML Top 10 ML01",
    ),
    (
        "3 Robustness goal and acceptance criteria",
        "ISO/IEC TR 24029-1:2021 robustness goals; prEN 18282 objective "
        "criteria stated before results; EU AI Act Art. 15(3) declared metrics",
    ),
    (
        "4 Threat model",
        "NIST AI 100-2 E2025 goal / knowledge / capabilities, §2.2.3 transferability; MITRE ATLAS "
        "AML.T0043.002, AML.T0005.*; FDA premarket cybersecurity guidance (threat model)",
    ),
    (
        "5 Protocol",
        "ISO/IEC TR 24029-1 test plan and protocol; GMLP P4 (test data independent of training); "
        "FDA premarket cybersecurity guidance (traceable verification evidence)",
    ),
    (
        "6 Results",
        "EU AI Act Art. 15(3) metrics with intervals; ISO/IEC DIS 24029-3 (draft) statistical methods; "
        "GMLP P8; AAMI TIR34971 (findings phrased as hazardous situations)",
    ),
    ("7 Perceptibility", "Bortsova et al. 2021 §6.6 (explicit, measured perceptibility criterion; zoomed images)"),
    (
        "8 Risk file",
        "AAMI TIR34971 / ISO 14971 hazard → hazardous situation → harm; FDA premarket cybersecurity "
        "guidance (threat → control → verification evidence, stable ids)",
    ),
    (
        "9 Limitations and residual risk",
        "FDA draft guidance (per summaries): all known limitations; GMLP P9; AAMI TIR34971 residual risk",
    ),
    ("10 Annexes", "FDA premarket cybersecurity guidance (traceability); reproducibility of the evidence"),
]


def data_rows(data: DataRecord) -> list[tuple[str, str]]:
    """Where the images came from, under which licence, how they were prepared, labelled and split."""
    positives = "not applicable" if data.test_positives is None else str(data.test_positives)
    return [
        ("source (as given)", data.source),
        ("origin", data.origin),
        ("licence", data.licence),
        ("file read", data.resolved_path),
        ("source file sha256", data.sha256),
        ("task", data.task),
        ("label mapping", data.label_mapping),
        ("class names", ", ".join(data.class_names)),
        ("resampling", data.resampling),
        ("image size audited (px)", str(data.image_size)),
        ("channels", str(data.channels)),
        ("split rule", data.split_rule),
        ("splits by patient", "yes" if data.patient_level else "no (image-level)"),
        ("split ids sha256", data.split_ids_sha256),
        ("test images", str(data.test_size)),
        ("test positives", positives),
        ("test selection", data.test_selection),
    ]


def label_text(label: tuple[int, ...] | int, results: AuditResults) -> str:
    """An example's true label in words where the class names allow it."""
    names = results.data.class_names or results.target.card.class_names or ()
    if isinstance(label, tuple):
        hits = [names[k] if k < len(names) else f"class {k}" for k, v in enumerate(label) if v]
        return ", ".join(hits) or "no finding"
    if results.data.task == "binary":
        word = "positive" if label else "negative"
        name = names[label] if len(names) == 2 else word
        return word if name == word else f"{name} ({word})"
    return f"{names[label]} ({label})" if label < len(names) else str(label)


def findings(results: AuditResults) -> list[tuple[str, str]]:
    """The verdict card's findings beyond the worst case: noise, unfit and budget-stopped surrogates, the grid."""
    out = []
    noise = noise_rows(results)
    judged = [n for n in noise if n["rule"] is not None]
    if judged:
        bad = [n for n in judged if n["rule"].status in ("FAIL", "INCONCLUSIVE")]
        if bad:
            worst = min(bad, key=lambda n: n["value"].low)
            fp = (
                f"; at the threshold it creates {worst['op'].false_positives_created_control} false positives and "
                f"loses {worst['op'].true_positives_lost_control} true positives"
                if worst["op"]
                else ""
            )
            out.append(
                (
                    "Noise fragility",
                    f"Noise alone degrades the target: uncrafted control noise of the attack's "
                    f"size ({worst['attack']}, ε {worst['eps']:g} = {grey(worst['eps'])} grey levels) leaves "
                    f"{fmt_interval(worst['value'])} of the clean AUC ({worst['rule'].criterion_id} "
                    f"{worst['rule'].status}: {worst['rule'].rule}){fp}. This is a finding in its own right, apart "
                    "from the adversarial-specific effect (section 6.3).",
                )
            )
        else:
            out.append(
                (
                    "Noise fragility",
                    "Control noise alone meets the noise criterion at every admissible ε (section 6.3).",
                )
            )
    elif noise:
        worst = min(noise, key=lambda n: n["value"].point)
        out.append(
            (
                "Noise fragility",
                f"Not gated (the scenario sets no gate.min_control_relative_auc). Lowest "
                f"control/clean AUC at an admissible ε: {fmt_interval(worst['value'])} ({worst['attack']}, "
                f"ε {worst['eps']:g}); section 6.3.",
            )
        )
    unfit = [s for s in results.surrogates if s.fitness is not None and not s.fitness.fit]
    if unfit:
        out.append(
            (
                "Unfit surrogates",
                f"{len(unfit)} of {len(results.surrogates)} surrogates are unfit, so their "
                "results are not evidence of robustness (a failure they cause still counts): "
                + "; ".join(f"{s.id}: {', '.join(s.fitness.reasons)}" for s in unfit)
                + ".",
            )
        )
    budget = [s for s in results.surrogates if s.stop_reason == "budget"]
    if budget:
        out.append(
            (
                "Stopped by the budget",
                f"{len(budget)} surrogate(s) stopped because the epoch budget ran out, "
                f"not at a validation plateau, and may be under-trained: {', '.join(s.id for s in budget)} "
                "(Annex C).",
            )
        )
    for c in results.epsilon_choice:
        if not c.admissible_epsilons_pm1:
            out.append(
                (
                    "No admissible ε",
                    f"{c.attack_id}: no ε met the perceptibility bound; extend `epsilons_pm1` downward.",
                )
            )
        elif not c.bound_binds:
            out.append(
                (
                    "ε limited by the grid",
                    f"{c.attack_id}: every ε in the grid, up to "
                    f"{max(c.admissible_epsilons_pm1):g}, met mean SSIM ≥ {c.bound:g}: the grid, not "
                    "perceptibility, limited ε. Extend `epsilons_pm1` upward to find where perceptibility binds.",
                )
            )
    return out


def limitations(results: AuditResults) -> list[str]:
    """Known limitations and residual risk, with this run's numbers."""
    allowed = admissible(results)
    cells = [c for c in results.cells if is_admissible(c, allowed)]
    out = [
        "A transfer estimate is realistic, not an upper bound. The simulated attacker never queries the target and "
        "knows only what each scenario row grants. An attacker who can query the target (score- or decision-based "
        "attacks, MITRE ATLAS AML.T0043.001 Black-Box Optimization), who holds its weights (white-box), who has more "
        "or better data, or who adapts the attack to a defence can lower the target's AUC further; this audit does "
        "not bound that.",
    ]
    wb = [w.auc_whitebox for s in results.surrogates if s.fitness is not None for w in s.fitness.whitebox]
    if wb:
        out.append(
            f"For reference, the surrogates attacked white-box with their own images fell to AUC {min(wb):.3f}"
            f"–{max(wb):.3f}: what an attacker with the target's gradients could approach."
        )
    data = results.data
    widths = [
        c.relative_auc.high - c.relative_auc.low
        for c in cells
        if math.isfinite(c.relative_auc.high) and math.isfinite(c.relative_auc.low)
    ]
    degenerate = sum(c.auc_clean.degenerate for c in cells)
    positives = f" ({data.test_positives} positive)" if data.test_positives is not None else ""
    span = f"{100 * min(widths):.1f}–{100 * max(widths):.1f}" if widths else ""
    spread = f"; the 95% intervals of relative AUC are {span} percentage points wide" if widths else ""
    out.append(
        f"Sample size: the results rest on {data.test_size} test images{positives}{spread}. Intervals are "
        "bootstrap percentile intervals over images"
        + (f"; {degenerate} resamples had one class only and were excluded" if degenerate else "")
        + ". A larger test set narrows them and may settle inconclusive criteria."
    )
    seeds: dict[str, int] = {}
    for s in results.surrogates:
        if not s.member_ids:
            seeds[s.row_id] = seeds.get(s.row_id, 0) + 1
    if seeds and max(seeds.values()) < 3:
        out.append(
            f"{max(seeds.values())} surrogate seed(s) per row at most: a seed can move transfer results by 1–2 "
            "percentage points; the gate judged the most harmful seed, and more seeds give an attacker more "
            "chances (at least 3 recommended)."
        )
    unfit = [s for s in results.surrogates if s.fitness is not None and not s.fitness.fit]
    if unfit:
        out.append(
            f"{len(unfit)} surrogate(s) are unfit (they did not learn, or their own attacks did not break "
            "them); a row whose surrogates are all unfit cannot show robustness and is inconclusive."
        )
    out.append(
        f"The target's development split ({results.scenario.target.trained_on}) is as the scenario states "
        "it; medaudit cannot verify which images the manufacturer trained on. Surrogates learn from splits of "
        "the audit data set."
    )
    out.extend(f"Data: {note.rstrip('.')}." for note in data.notes)
    if not data.patient_level and not data.notes:
        out.append("Data: splits are image-level, so one patient may sit in several splits.")
    out.append(
        "Scope: untargeted L∞-bounded digital edits at inference time, by the attacks listed in the protocol. "
        "Not covered: other norms and patch or physical-world attacks, data poisoning, model inversion, "
        "membership or data leakage, distribution drift."
    )
    if results.scenario.delivery == "float":
        out.append(
            "Adversarial images were handed to the target as floating-point arrays; an attacker who must "
            "deliver 8-bit files loses sub-grey-level detail (set “delivery: uint8” in the scenario to measure "
            "that case)."
        )
    bound = {c.bound for c in results.epsilon_choice}
    if bound:
        out.append(
            f"Perceptibility is judged by mean SSIM ≥ {', '.join(f'{b:g}' for b in sorted(bound))}, a proxy, "
            "not a reader study; individual images may be more visibly changed than the mean suggests."
        )
    grid = [c.attack_id for c in results.epsilon_choice if c.admissible_epsilons_pm1 and not c.bound_binds]
    if grid:
        out.append(
            f"For {', '.join(grid)} the grid, not perceptibility, limited ε: larger perturbations that still "
            "meet the bound were not tried; extend `epsilons_pm1` upward."
        )
    unmeasured = [c.attack_id for c in results.epsilon_choice if not c.admissible_epsilons_pm1]
    if unmeasured:
        out.append(
            f"Not judged: {', '.join(unmeasured)}: no ε in the sweep met the perceptibility bound, so these "
            "attacks have no result at an acceptable ε; extend the scenario's epsilons downward."
        )
    flagged = sum(c.whitebox_flag for c in results.cells)
    if flagged:
        out.append(
            f"{flagged} cell(s) show a transfer attack beating the white-box attack on its own surrogate, "
            "which signals a measurement bug; treat those results with suspicion (Annex B)."
        )
    return out


def recommendations(results: AuditResults) -> list[tuple[str, str]]:
    """Bortsova et al. 2021 §6.6 recommendations, and how this run applies each."""
    sur = [s for s in results.surrogates if not s.member_ids]
    varied = [
        factor
        for factor, values in (
            ("architecture", {s.arch for s in sur}),
            ("initialisation", {s.init for s in sur}),
            ("development data", {s.split for s in sur}),
        )
        if len(values) > 1
    ]
    fixed = [f for f in ("architecture", "initialisation", "development data") if f not in varied]
    disparity = (
        f"This scenario varies {', '.join(varied) or 'no factor'}"
        + (f" and holds {', '.join(fixed)} fixed" if fixed else "")
        + " across its rows (section 4)."
    )
    examples = (
        f"{len(results.examples)} example image(s) are shown full-size and as 4× nearest-neighbour crops (section 7)."
        if results.examples
        else "This run recorded no example images."
    )
    return [
        (
            "State a precise threat model.",
            "Goal, knowledge and capabilities per scenario row, in NIST AI 100-2 "
            "terms, with MITRE ATLAS ids (section 4).",
        ),
        (
            "Tune the perturbation degree per modality under an explicit, measured perceptibility criterion.",
            "Every ε whose mean SSIM meets the stated bound is admissible, and each criterion is judged at each of "
            "them (section 7).",
        ),
        ("Provide full-size or zoomed-in images the reader can examine.", examples),
        ("Simulate target–surrogate disparities (pre-training, development data, architecture).", disparity),
        ("Describe every attack parameter.", "All attack and surrogate-training parameters are listed (section 5)."),
        (
            "In a private evaluation, aim for a realistic estimate and do not disclose attack details publicly.",
            "This report lists every attack parameter: distribute it as a confidential document.",
        ),
    ]
