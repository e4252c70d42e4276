"""The report's prose that depends on the run: data provenance, limitations, the paper's 6.6 recommendations,
and the standards traceability table (REGULATORY.md)."""

from __future__ import annotations

import math

from medaudit.gate import chosen_cells, surrogates_by_row
from medaudit.results import AuditResults

_DATA_LABELS = (("source", "source"), ("sha256", "source file sha256"), ("task", "task"),
                ("class_names", "class names"), ("image_size", "image size (px)"), ("channels", "channels"),
                ("patient_level", "splits by patient"), ("split_ids_sha256", "split ids sha256"),
                ("test_size", "test images"), ("test_positives", "test positives"), ("test_selection", "test selection"))

TRACEABILITY = [
    ("1 Verdict card", "prEN 18282 (draft): objective criteria to decide whether a vulnerability goal is met; "
                       "acceptance-table form of 510(k) summaries (lower 95% bound vs threshold)"),
    ("2 Identification and scope", "FDA draft guidance on AI-enabled device software functions, Jan 2025 (per "
                                   "summaries): model evasion, model card; EU AI Act Art. 15(5); OWASP ML Top 10 ML01"),
    ("3 Robustness goal and acceptance criteria", "ISO/IEC TR 24029-1:2021 robustness goals; prEN 18282 objective "
                                                  "criteria stated before results; EU AI Act Art. 15(3) declared metrics"),
    ("4 Threat model", "NIST AI 100-2 E2025 goal / knowledge / capabilities, §2.2.3 transferability; MITRE ATLAS "
                       "AML.T0043.002, AML.T0005.*; FDA premarket cybersecurity guidance (threat model)"),
    ("5 Protocol", "ISO/IEC TR 24029-1 test plan and protocol; GMLP P4 (test data independent of training); "
                   "FDA premarket cybersecurity guidance (traceable verification evidence)"),
    ("6 Results", "EU AI Act Art. 15(3) metrics with intervals; ISO/IEC DIS 24029-3 (draft) statistical methods; "
                  "GMLP P8; AAMI TIR34971 (findings phrased as hazardous situations)"),
    ("7 Perceptibility", "Bortsova et al. 2021 §6.6 (explicit, measured perceptibility criterion; zoomed images)"),
    ("8 Limitations and residual risk", "FDA draft guidance (per summaries): all known limitations; GMLP P9; "
                                        "AAMI TIR34971 residual risk"),
    ("9 Annexes", "FDA premarket cybersecurity guidance (traceability); reproducibility of the evidence"),
]


def _v(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no (image-level)"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return "not recorded" if value is None else str(value)


def data_rows(data: dict) -> list[tuple[str, str]]:
    """Provenance rows in a fixed order, then any further scalar keys the run recorded."""
    known = {k for k, _ in _DATA_LABELS} | {"split_sizes", "notes"}
    rows = [(label, _v(data[k])) for k, label in _DATA_LABELS if k in data]
    return rows + [(k, _v(v)) for k, v in data.items() if k not in known and not isinstance(v, dict)]


def label_text(label: list[int] | int, results: AuditResults) -> str:
    """An example's true label in words where the class names allow it."""
    names = results.data.get("class_names") or (results.target.get("card") or {}).get("class_names") or []
    if isinstance(label, list):
        hits = [names[k] if k < len(names) else f"class {k}" for k, v in enumerate(label) if v]
        return ", ".join(hits) or "no finding"
    if results.data.get("task", "binary") == "binary":
        word = "positive" if label else "negative"
        name = names[label] if len(names) == 2 else word
        return word if name == word else f"{name} ({word})"
    return f"{names[label]} ({label})" if label < len(names) else str(label)


def limitations(results: AuditResults) -> list[str]:
    """Known limitations and residual risk, with this run's numbers."""
    cells = list(chosen_cells(results).values())
    out = [
        "A transfer estimate is realistic, not an upper bound. The simulated attacker never queries the target and "
        "knows only what each scenario row grants. An attacker who can query the target (score- or decision-based "
        "attacks, MITRE ATLAS AML.T0043.001 Black-Box Optimization), who holds its weights (white-box), who has more "
        "or better data, or who adapts the attack to a defence can lower the target's AUC further; this audit does "
        "not bound that.",
    ]
    wb = [c.surrogate_auc_whitebox for c in cells if math.isfinite(c.surrogate_auc_whitebox)]
    if wb:
        out.append(f"For reference, the surrogates attacked white-box with their own images fell to AUC {min(wb):.3f}"
                   f"–{max(wb):.3f}: what an attacker with the target's gradients could approach.")
    n, pos = results.data.get("test_size"), results.data.get("test_positives")
    widths = [c.relative_auc.high - c.relative_auc.low for c in cells
              if math.isfinite(c.relative_auc.high) and math.isfinite(c.relative_auc.low)]
    degenerate = sum(c.auc_clean.degenerate for c in cells)
    size = f"{n} test images" + (f" ({pos} positive)" if pos is not None else "") if n is not None else \
        "a test set whose size the results do not record"
    span = f"{100 * min(widths):.1f}" if widths and f"{min(widths):.3f}" == f"{max(widths):.3f}" else \
        f"{100 * min(widths, default=0):.1f}–{100 * max(widths, default=0):.1f}"
    spread = f"; the 95% intervals of relative AUC are {span} percentage points wide" if widths else ""
    out.append(f"Sample size: the results rest on {size}{spread}. Intervals are bootstrap percentile intervals over "
               "images" + (f"; {degenerate} resamples had one class only and were excluded" if degenerate else "") +
               ". A larger test set narrows them and may settle inconclusive criteria.")
    seeds = [len(s) for s in surrogates_by_row(results).values()]
    if seeds and max(seeds) < 2:
        out.append("One surrogate seed per row: a single seed can move transfer results by 1–2 percentage points; "
                   "add seeds to the scenario to see the spread.")
    trained_on = (results.scenario.get("target") or {}).get("trained_on", "not stated")
    out.append(f"The target's development split ({trained_on}) is as the scenario states it; medaudit cannot verify "
               "which images the manufacturer trained on. Surrogates learn from splits of the audit data set.")
    out.extend(f"Data: {note.rstrip('.')}." for note in results.data.get("notes") or [])
    if results.data.get("patient_level") is False and not results.data.get("notes"):
        out.append("Data: splits are image-level, so one patient may sit in several splits.")
    out.append("Scope: untargeted L∞-bounded digital edits at inference time, by the attacks listed in the protocol. "
               "Not covered: other norms and patch or physical-world attacks, data poisoning, model inversion, "
               "membership or data leakage, distribution drift.")
    if (results.scenario.get("delivery") or "float") == "float":
        out.append("Adversarial images were handed to the target as floating-point arrays; an attacker who must "
                   "deliver 8-bit files loses sub-grey-level detail (set “delivery: uint8” in the scenario to measure "
                   "that case).")
    bound = {c.bound for c in results.epsilon_choice}
    if bound:
        out.append(f"Perceptibility is judged by mean SSIM ≥ {', '.join(f'{b:g}' for b in sorted(bound))}, a proxy, "
                   "not a reader study; individual images may be more visibly changed than the mean suggests.")
    unmeasured = [c.attack_id for c in results.epsilon_choice if c.chosen_epsilon_pm1 is None]
    if unmeasured:
        out.append(f"Not judged: {', '.join(unmeasured)}: no ε in the sweep met the perceptibility bound, so these "
                   "attacks have no result at an acceptable ε; extend the scenario's epsilons downward.")
    flagged = sum(c.whitebox_flag for c in results.cells)
    if flagged:
        out.append(f"{flagged} cell(s) show a transfer attack beating the white-box attack on its own surrogate, "
                   "which signals a measurement bug; treat those results with suspicion (section 6).")
    return out


def recommendations(results: AuditResults) -> list[tuple[str, str]]:
    """Bortsova et al. 2021 §6.6 recommendations, and how this run applies each."""
    sur = results.surrogates
    varied = [factor for factor, values in (("architecture", {s.arch for s in sur}), ("initialisation", {s.init for s in sur}),
                                            ("development data", {s.split for s in sur})) if len(values) > 1]
    fixed = [f for f in ("architecture", "initialisation", "development data") if f not in varied]
    disparity = (f"This scenario varies {', '.join(varied) or 'no factor'}"
                 + (f" and holds {', '.join(fixed)} fixed" if fixed else "") + " across its rows (section 4).")
    examples = (f"{len(results.examples)} example image(s) are shown full-size and as 4× nearest-neighbour crops "
                "(section 7)." if results.examples else "This run recorded no example images.")
    return [
        ("State a precise threat model.", "Goal, knowledge and capabilities per scenario row, in NIST AI 100-2 "
                                          "terms, with MITRE ATLAS ids (section 4)."),
        ("Tune the perturbation degree per modality under an explicit, measured perceptibility criterion.",
         "ε is chosen per attack as the largest whose mean SSIM meets the stated bound (section 7)."),
        ("Provide full-size or zoomed-in images the reader can examine.", examples),
        ("Simulate target–surrogate disparities (pre-training, development data, architecture).", disparity),
        ("Describe every attack parameter.", "All attack and surrogate-training parameters are listed (section 5)."),
        ("In a private evaluation, aim for a realistic estimate and do not disclose attack details publicly.",
         "This report lists every attack parameter: distribute it as a confidential document."),
    ]
