"""What the template shows, built from `AuditResults` only, in report order (shared/REGULATORY.md "Report order").

The report never judges: it shows the gate's recorded rules, rows, verdicts and worst case. Where the record lacks
something, the view says so instead of filling it in.
"""

from __future__ import annotations

from pathlib import Path

import medaudit.report.annexes as annexes
import medaudit.report.findings as findings
import medaudit.report.method as method
import medaudit.report.plots as plots
import medaudit.report.risk as risk
import medaudit.report.standards as standards
import medaudit.report.threats as threats
from medaudit.records import CRITERIA, TIER_LABELS, AuditResults, rule_text
from medaudit.report.images import example_panels
from medaudit.report.page_one import page_one
from medaudit.report.units import native_unit


def label_text(label: tuple[int, ...] | int, results: AuditResults) -> str:
    """An example's true label in words where the class names allow it."""
    names = results.data.class_names or results.target.card.class_names or ()
    if isinstance(label, tuple):
        return ", ".join(names[k] if k < len(names) else f"class {k}" for k, v in enumerate(label) if v) or "none"
    return names[label] if label < len(names) else f"class {label}"


def criteria_rows(results: AuditResults) -> list[dict]:
    """Each criterion the scenario states: its rule and the manufacturer's rationale, quoted or said absent. A
    criterion the scenario does not state is not on the card (`unstated_criteria`): nothing is shown unjudged."""
    gate = results.scenario.gate
    out = []
    for c in CRITERIA:
        threshold = getattr(gate, c.threshold_field)
        if threshold is not None:
            out.append(
                {
                    "c": c,
                    "rule": rule_text(c, threshold, results.scenario.bootstrap.confidence),
                    "rationale": getattr(gate.rationale, c.threshold_field),
                }
            )
    return out


def unstated_criteria(results: AuditResults) -> list[str]:
    return [f"{c.id} ({c.short})" for c in CRITERIA if getattr(results.scenario.gate, c.threshold_field) is None]


def card_rows(results: AuditResults) -> list[tuple[str, str, str]]:
    card, sources = results.target.card, results.target.card_sources
    out = []
    for k in type(card).model_fields:
        v = getattr(card, k)
        if k == "intended_use" or (v is None and k in ("mean", "std", "value_range", "name")):
            continue
        text = "not stated" if v is None else ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
        out.append((k, text, sources.get(k, "—")))
    return out


def build_context(results: AuditResults, *, results_sha256: str | None = None, attached: list | None = None) -> dict:
    """Everything the template renders, in report order."""
    target = results.target
    ran = [c.attack.name for c in results.cells]  # the attacks that ran: annexes name only these
    attacks, fitness = findings.fitness_by_row(results)
    annex_attacks, surrogates = annexes.surrogate_rows(results)
    return {
        "r": results,
        "sc": results.scenario,
        "prov": results.provenance,
        "card": target.card,
        "p1": page_one(results),
        "masking_anomaly": next(
            (a.id for v in results.tier_verdicts if v.masking for a in results.anomalies if v.masking in a.text), None
        ),
        "tier_labels": TIER_LABELS,
        "target_name": target.name or target.card.name or Path(target.path).name or "unnamed",
        "card_rows": card_rows(results),
        "native_unit": native_unit(target.card),
        "criteria": criteria_rows(results),
        "unstated": unstated_criteria(results),
        "conclusions": risk.hazard_conclusions(results),
        "sample_sizes": results.sample_sizes,
        "space": page_one(results)["space"],
        "hazards": risk.hazard_rows(results),
        "tier_threats": threats.tier_rows(results),
        "row_threats": threats.row_threats(results),
        "atlas": threats.atlas_names(results),
        "tier_status": method.tier_status_rows(results),
        "bound_checks": method.bound_check_rows(results),
        "bound_unverified": next((v.unverified for v in results.tier_verdicts if v.unverified), None),
        "attacks": method.attack_rows(results),
        "epsilons": method.epsilon_rows(results),
        "grid_text": method.grid_text(results),
        "perceptibility_text": method.perceptibility_text(results),
        "fitness_rule": method.fitness_rule(results),
        "bootstrap_text": method.bootstrap_text(results),
        "data_rows": method.data_rows(results),
        "training_text": method.training_text(results),
        "breaking": findings.breaking_rows(results),
        "decisions": findings.decision_rows(results),
        "fitness_attacks": attacks,
        "fitness": fitness,
        "release": findings.release_rows(results),
        "residual": risk.residual_rows(results),
        "limitations": risk.limitations(results),
        "examples": [
            {"e": e, "panels": example_panels(e), "label": label_text(e.label, results)} for e in results.examples
        ],
        "standards": standards.standards_rows(ran),
        "references": standards.references(ran),
        "annex_attacks": annex_attacks,
        "surrogates": surrogates,
        "spread": annexes.spread_rows(results),
        "rules": annexes.rule_rows(results),
        "cells": annexes.cell_rows(results),
        "provenance": annexes.provenance_rows(results, results_sha256),
        "timing": annexes.timing_text(results),
        "scenario_yaml": annexes.scenario_yaml(results),
        "attached": attached if attached is not None else [],
        "plots": {
            "robustness": plots.robustness_curves(results),
            "ssim": plots.ssim_curves(results),
            "curves": plots.learning_curves(results),
        },
    }
