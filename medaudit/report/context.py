"""What the report template shows, built from `AuditResults` only: verdict card, scope, threat model, protocol, annexes.

The report never judges: it shows the gate's recorded rules, verdict and worst case. Numbers are taken from
the record as they are; where the record lacks something the view says so instead of filling it in.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from medaudit.criteria import CONTROLS, CRITERIA, NO_CRITERIA_ID, WORST_OVER_ATTACKS
from medaudit.data import GREY_LEVELS_PER_PM1
from medaudit.report import narrative, plots, risk, tables
from medaudit.report.images import example_panels
from medaudit.report.units import native_epsilon, native_unit
from medaudit.results import MARKS, AuditResults, GateRule, SurrogateResult, count_outcomes

ATLAS = {
    "AML.T0043.002": "Craft Adversarial Data: Black-Box Transfer",
    "AML.T0005": "Create Proxy AI Model",
    "AML.T0005.000": "Create Proxy AI Model: Train Proxy via Gathered AI Artifacts",
    "AML.T0005.001": "Create Proxy AI Model: Train Proxy via Replication",
    "AML.T0005.002": "Create Proxy AI Model: Use Pre-Trained Model",
}
# each development split as a set of disjoint parts: d1/10 is a tenth of d1, d2/2 half of d2
_PARTS = {
    "d1": {"d1a", "d1b"},
    "d1/10": {"d1a"},
    "d2": {"d2a", "d2b"},
    "d2/2": {"d2a"},
    "full": {"d1a", "d1b", "d2a", "d2b"},
}
_CRITERIA = {c.id: c for c in CRITERIA}


def _value(v: object) -> str:
    if v is None:
        return "not stated"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) if v else "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def verdict_rows(results: AuditResults) -> list[dict]:
    """Gate rules grouped by scenario row: criterion | attack, worst ε, surrogate judged | result | outcome."""
    by_id = {s.id: s for s in results.surrogates}
    groups: dict[str, list[dict]] = {}
    for r in results.gate:
        if r.criterion_id == NO_CRITERIA_ID:
            continue  # shown as the verdict card's warning, not as a table row
        criterion = _CRITERIA.get(r.criterion_id)
        worst = r.attack_id == WORST_OVER_ATTACKS
        groups.setdefault(r.row_id, []).append(
            {
                "r": r,
                "endpoint": criterion.endpoint if criterion else r.rule,
                "worst": worst,
                "attack": _attack_label(results, r),
                "surrogate": None
                if r.surrogate_id is None
                else tables.surrogate_label(by_id.get(r.surrogate_id), r.surrogate_id),
                "criterion": r.rule.rpartition(", ")[2] or r.rule,
                "mark": MARKS[r.status],
            }
        )
    return [{"row": row, "threat_id": items[0]["r"].threat_id, "rules": items} for row, items in groups.items()]


def _attack_label(results: AuditResults, rule: GateRule) -> str:
    """The rule's attack; for a row's worst case over attacks, the attack it repeats where one matches."""
    if rule.attack_id != WORST_OVER_ATTACKS:
        return rule.attack_id
    worst = tables.repeated_rule(results.gate, rule).attack_id
    return "all attacks" if worst == WORST_OVER_ATTACKS else f"all attacks (worst: {worst})"


def split_relation(surrogate_split: str, target_split: str) -> str:
    """How the surrogate's development data relates to the target's (paper: data parity / disparity)."""
    s, t = _PARTS.get(surrogate_split), _PARTS.get(target_split)
    if s is None or t is None:
        return "relation unknown"
    if s == t:
        return "the same images as the target (data parity)"
    if not s & t:
        return "disjoint from the target's (data disparity)"
    if s < t:
        return "a part of the target's development data"
    if s > t:
        return "contains all of the target's development data"
    return "overlaps the target's development data"


def _knowledge(s: SurrogateResult, results: AuditResults) -> tuple[list[dict], str]:
    card, trained_on = results.target.card, results.scenario.target.trained_on
    sizes = results.data.split_sizes
    arch_rel = (
        "unknown (card gives no architecture)"
        if not card.architecture
        else ("same" if s.arch == card.architecture else "different")
    )
    init_rel = "unknown (card gives no init)" if not card.init else ("same" if s.init == card.init else "different")
    data_rel = split_relation(s.split, trained_on)
    n = lambda split: f" ({sizes[split]:,} images)" if split in sizes else ""  # noqa: E731
    rows = [
        {
            "aspect": "development data",
            "attacker": f"{s.split}{n(s.split)}",
            "target": f"{trained_on}{n(trained_on)}",
            "relation": data_rel,
        },
        {"aspect": "architecture", "attacker": s.arch, "target": _value(card.architecture), "relation": arch_rel},
        {"aspect": "initialisation", "attacker": s.init, "target": _value(card.init), "relation": init_rel},
    ]
    shared = []
    if arch_rel == "same":
        shared.append("architecture")
    if init_rel == "same" and s.init == "imagenet":
        # the same ImageNet weights only exist for the same architecture; otherwise only the pre-training is shared
        shared.append(
            "ImageNet weights (same architecture and pre-training)"
            if arch_rel == "same"
            else "ImageNet pre-training (a different architecture, so not the same weights)"
        )
    if "disjoint" not in data_rel and data_rel != "relation unknown":
        shared.append("development images")
    level = (
        f"gray-box: the attacker shares the target's {', '.join(shared)}"
        if shared
        else "black-box: no design component of the target is known to the attacker"
    )
    return rows, level


def threat_rows(results: AuditResults) -> list[dict]:
    """NIST AI 100-2 goal / knowledge / capabilities, MITRE ATLAS ids and the risk file's threat id, per row."""
    sc = results.scenario
    out = []
    for row_id in tables.row_order(results):
        members = [s for s in results.surrogates if s.row_id == row_id]
        seeds = [s for s in members if not s.member_ids]
        ensembles = [s for s in members if s.member_ids]
        knowledge, level = _knowledge(seeds[0], results) if seeds else ([], "not recorded")
        out.append(
            {
                "row_id": row_id,
                "threat_id": f"T-{row_id}",
                "seeds": [s.seed for s in seeds],
                "ensembles": ensembles,
                "goal": f"{sc.goal}: any change of the target's output away from the true label counts "
                "(integrity violation)",
                "knowledge": knowledge,
                "level": level,
                "queries": sc.capabilities.queries_to_target,
                "input_edit": sc.capabilities.input_edit,
                "norm": sc.capabilities.norm,
                "delivery": sc.delivery,
                "atlas": [(a, ATLAS.get(a, "see MITRE ATLAS")) for a in sorted({a for s in members for a in s.atlas})],
            }
        )
    return out


def card_rows(results: AuditResults) -> list[dict]:
    card, sources = results.target.card, results.target.card_sources
    return [
        {"field": k, "value": _value(getattr(card, k)), "source": sources.get(k, "—")}
        for k in type(card).model_fields
        if k != "intended_use" and not (getattr(card, k) is None and k in ("mean", "std", "value_range"))
    ]


def epsilon_rows(results: AuditResults) -> list[dict]:
    """The ε grid in the three units, and for each attack whether its perceptibility bound admits it."""
    card = results.target.card
    allowed = tables.admissible(results)
    return [
        {
            "pm1": e,
            "grey": e * GREY_LEVELS_PER_PM1,
            "native": native_epsilon(e, card),
            "admissible": [(a, any(abs(e - x) < 1e-9 for x in xs)) for a, xs in allowed.items()],
        }
        for e in results.scenario.epsilons_pm1
    ]


def _attacks(results: AuditResults) -> list[dict]:
    seen = {}
    for c in results.cells:
        seen.setdefault(c.attack_id, c.attack)
    rows = [
        {
            "id": a,
            "params": [(k, _value(v)) for k, v in spec.model_dump().items() if k != "name"],
            "name": spec.name,
            "note": None,
        }
        for a, spec in seen.items()
    ]
    return rows + [
        {"id": c.attack_id, "params": [], "name": "", "note": "not recorded: no cell of this attack"}
        for c in results.epsilon_choice
        if c.attack_id not in seen
    ]


def build_context(results: AuditResults, *, results_sha256: str | None = None) -> dict:
    """Everything the template renders, in report order."""
    target, prov, card = results.target, results.provenance, results.target.card
    gate = results.scenario.gate
    threats = threat_rows(results)
    worst = results.worst_case
    counts = count_outcomes(results.gate)
    return {
        "r": results,
        "sc": results.scenario,
        "prov": prov,
        "card": card,
        "status_complete": results.status == "complete",
        "verdict": results.verdict,
        "verdict_mark": MARKS.get(results.verdict, ""),
        "counts": counts,
        "junit_failures": counts["FAIL"] + counts["INCONCLUSIVE"],
        "rules": results.gate,
        "rule_groups": verdict_rows(results),
        "no_criteria": next((r.message for r in results.gate if r.criterion_id == NO_CRITERIA_ID), None),
        "worst": worst,
        "worst_native": native_epsilon(worst.epsilon_pm1, card) if worst else None,
        "native_unit": native_unit(card),
        "findings": narrative.findings(results),
        "target_name": target.name or card.name or Path(target.path).name or "unnamed",
        "target_file": Path(target.path).name,
        "sha16": target.sha256[:16] or "unknown",
        "card_rows": card_rows(results),
        "intended_use": card.intended_use,
        "load_check": target.load_check,
        "gate": gate,
        "criteria": CRITERIA,
        "controls": CONTROLS,
        "threshold_rule": (
            f"fixed score threshold {gate.threshold:g} (scenario gate.threshold)"
            if gate.threshold is not None
            else f"the clean-image threshold giving specificity {gate.specificity:g} (scenario gate.specificity)"
        ),
        "threats": threats,
        "epsilon_rows": epsilon_rows(results),
        "data_rows": narrative.data_rows(results.data),
        "split_sizes": list(results.data.split_sizes.items()),
        "attacks": _attacks(results),
        "training": list(results.scenario.training.model_dump().items()),
        "surrogates": [f["s"] for f in tables.fitness_rows(results)],
        "fitness": tables.fitness_rows(results),
        "seed_spread": tables.seed_spread_rows(results),
        "operating": tables.operating_rows(results),
        "noise": tables.noise_rows(results),
        "per_class": tables.per_class_rows(results),
        "annex_cells": tables.annex_rows(results),
        "choices": results.epsilon_choice,
        "risk": risk.risk_rows(results, {t["row_id"]: t["level"] for t in threats}),
        "references": risk.REFERENCES,
        "examples": [
            {"e": e, "panels": example_panels(e), "label": narrative.label_text(e.label, results)}
            for e in results.examples
        ],
        "limitations": narrative.limitations(results),
        "recommendations": narrative.recommendations(results),
        "traceability": narrative.TRACEABILITY,
        "scenario_yaml": yaml.safe_dump(
            results.scenario.model_dump(mode="json"),
            sort_keys=False,
            allow_unicode=True,
            width=100,
            default_flow_style=None,
        ),
        "results_sha256": results_sha256,
        "plots": {
            "auc": plots.auc_vs_epsilon(results),
            "ssim": plots.ssim_vs_epsilon(results),
            "curves": plots.learning_curves(results),
        },
    }
