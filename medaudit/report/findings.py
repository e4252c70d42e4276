"""The results as the gate recorded them: per threat and criterion the judged rule and its breaking epsilon, the
attacker it was judged on and whether that attacker is fit, the decisions at the clinical threshold, fitness by row,
paired comparisons and the comparison with the previous release. Nothing here judges."""

from __future__ import annotations

from medaudit.records import (
    CRITERIA,
    MARKS,
    AttackerFitness,
    AuditResults,
    BreakingEpsilon,
    CellRecord,
    GateRule,
    SurrogateResult,
)

_CRITERIA = {c.id: c for c in CRITERIA}
_SEVERITY = {"PASS": 0, "INCONCLUSIVE": 1, "FAIL": 2, "ERROR": 3}


def _key(e: float) -> float:
    return round(e, 9)


def threat_order(results: AuditResults) -> list[str]:
    """Threat rows in report order: the scenario's transfer rows, then each bound tier judged."""
    rows = list(dict.fromkeys(r.row_id for r in results.scenario.surrogate_rows()))
    return rows + [r for r in dict.fromkeys(g.row_id for g in results.gate) if r not in rows]


def is_summary(rule: GateRule, results: AuditResults) -> bool:
    """A threat's worst case over its attacks: its attack id names no attack of the scenario."""
    return rule.attack_id not in {a.id for a in results.scenario.attacks}


def summary_rules(results: AuditResults) -> dict[tuple[str, str], GateRule]:
    """(threat row, criterion) -> the rule that decides it: the worst over attacks, or the only attack's rule."""
    groups: dict[tuple[str, str], list[GateRule]] = {}
    for r in results.gate:
        if r.criterion_id in _CRITERIA:
            groups.setdefault((r.row_id, r.criterion_id), []).append(r)
    out = {}
    for key, rules in groups.items():
        summary = [r for r in rules if is_summary(r, results)]
        out[key] = summary[0] if summary else max(rules, key=lambda r: _SEVERITY[r.status])
    return out


def attack_of(rule: GateRule, results: AuditResults) -> str | None:
    """The attack a rule was decided on; for a worst-over-attacks rule, the per-attack rule it repeats."""
    if not is_summary(rule, results):
        return rule.attack_id
    same = (rule.row_id, rule.criterion_id, rule.attacker_id, rule.epsilon_pm1, rule.value, rule.status)
    return next(
        (
            r.attack_id
            for r in results.gate
            if not is_summary(r, results)
            and (r.row_id, r.criterion_id, r.attacker_id, r.epsilon_pm1, r.value, r.status) == same
        ),
        None,
    )


def attacker_label(s: SurrogateResult | None, attacker_id: str | None) -> str:
    if attacker_id is None:
        return "none"
    if s is None:
        return "the target itself" if attacker_id in ("query", "whitebox") else attacker_id
    if s.member_ids:
        return f"ensemble of {len(s.member_ids)} ({s.arch})"
    return f"seed {s.seed} ({s.arch})"


def unfit_why(f: AttackerFitness) -> str:
    """Why an attacker is unfit for one attack, from the fitness record's numbers."""
    parts = []
    if f.test_auc.low < f.test_auc_floor:
        parts.append("did not learn")
    if f.transfer is None:
        parts.append("transfer not checkable")
    elif f.transfer.drop_beyond_control.low <= f.transfer_floor:
        parts.append("no transfer")
    return ", ".join(parts) or "unfit"


def judged_on(rule: GateRule, results: AuditResults, surrogates: dict[str, SurrogateResult]) -> str:
    """Who the rule was judged on, and, where that attacker is unfit, what that means for the outcome."""
    if rule.tier != "transfer":
        return "the target itself"
    s = surrogates.get(rule.attacker_id or "")
    label = attacker_label(s, rule.attacker_id)
    attack = attack_of(rule, results)
    fitness = s.fitness_for(attack) if s is not None and attack else None
    if fitness is None or fitness.fit:
        return f"{label}, fit" if fitness else label
    why = unfit_why(fitness)
    if rule.status == "FAIL":
        return f"{label}, unfit ({why}): the attack still succeeded"
    if rule.status == "PASS":
        return f"no fit attacker; settled by the white-box bound (shown: {label}, {why})"
    return f"no fit attacker; not evidence (shown: {label}, {why})"


def _breaking(b: BreakingEpsilon | None) -> dict:
    if b is None:
        return {"eps": "not measured", "interval": "", "bracket": "", "bound": None, "near": None, "margin": "—"}
    if b.epsilon_pm1 is None:
        return {
            "eps": f"> {b.largest_tried_pm1:g}",
            "interval": "never crossed",
            "bracket": f"{len(b.measured)} ε measured",
            "bound": b.bound_epsilon_pm1,
            "near": b.near_invisible_epsilon_pm1,
            "margin": f"> {b.largest_tried_pm1 / b.bound_epsilon_pm1:.2g}" if b.bound_epsilon_pm1 else "—",
        }
    low = "—" if b.low_pm1 is None else f"{b.low_pm1:.3g}"
    high = f"> {b.largest_tried_pm1:g}" if b.high_pm1 is None else f"{b.high_pm1:.3g}"
    return {
        "eps": f"{b.epsilon_pm1:.3g}",
        "interval": f"{low}–{high}",
        "bracket": f"holds at {b.holds_at_pm1:.3g}; {len(b.measured)} ε measured, {b.bisection_points} by bisection",
        "bound": b.bound_epsilon_pm1,
        "near": b.near_invisible_epsilon_pm1,
        "margin": "—" if b.margin is None else f"{b.margin:.2g}",
    }


def breaking_rows(results: AuditResults) -> list[dict]:
    """Per threat and criterion: outcome, who it was judged on, the worst value, and epsilon* beside the bound's."""
    surrogates = {s.id: s for s in results.surrogates}
    summaries = summary_rules(results)
    out = []
    for row_id in threat_order(results):
        lines = []
        for criterion in CRITERIA:
            rule = summaries.get((row_id, criterion.id))
            if rule is None:
                continue
            lines.append(
                {
                    "rule": rule,
                    "criterion": criterion,
                    "mark": MARKS[rule.status],
                    "attack": attack_of(rule, results) or "—",
                    "judged": judged_on(rule, results, surrogates),
                    "b": _breaking(rule.breaking),
                }
            )
        if lines:
            out.append({"row_id": row_id, "threat_id": lines[0]["rule"].threat_id, "lines": lines})
    return out


def judged_cell(rule: GateRule, results: AuditResults) -> CellRecord | None:
    attack = attack_of(rule, results)
    if rule.attacker_id is None or rule.epsilon_pm1 is None or attack is None:
        return None
    return next(
        (
            c
            for c in results.cells
            if (c.attacker_id, c.attack_id, _key(c.epsilon_pm1)) == (rule.attacker_id, attack, _key(rule.epsilon_pm1))
        ),
        None,
    )


def decision_rows(results: AuditResults) -> list[dict]:
    """Per threat: the target's decisions at the clinical threshold in the cell its first criterion was judged on."""
    summaries = summary_rules(results)
    surrogates = {s.id: s for s in results.surrogates}
    out = []
    for row_id in threat_order(results):
        rule = next((summaries[(row_id, c.id)] for c in CRITERIA if (row_id, c.id) in summaries), None)
        cell = judged_cell(rule, results) if rule is not None else None
        if cell is None or cell.operating_point is None:
            continue
        out.append(
            {
                "threat_id": rule.threat_id,
                "criterion": rule.criterion_id,
                "attacker": attacker_label(surrogates.get(cell.attacker_id), cell.attacker_id),
                "attack": cell.attack_id,
                "eps": cell.epsilon_pm1,
                "op": cell.operating_point,
            }
        )
    return out


def fitness_by_row(results: AuditResults) -> tuple[list[str], list[dict]]:
    """Per transfer row and attack: how many of its attackers are fit, and why the others are not."""
    attacks = [a.id for a in results.scenario.attacks if a.tier == "transfer"]
    out = []
    for row_id in threat_order(results):
        attackers = [s for s in results.surrogates if s.row_id == row_id and s.role == "attacker"]
        if not attackers:
            continue
        cells = []
        for attack in attacks:
            records = [f for s in attackers if (f := s.fitness_for(attack)) is not None]
            why: dict[str, int] = {}
            for f in records:
                if not f.fit:
                    why[unfit_why(f)] = why.get(unfit_why(f), 0) + 1
            cells.append(
                {
                    "fit": sum(f.fit for f in records),
                    "n": len(records),
                    "why": ", ".join(f"{n} {w}" for w, n in why.items()),
                }
            )
        out.append({"row_id": row_id, "cells": cells})
    return attacks, out


def release_rows(results: AuditResults) -> list[dict]:
    rc = results.release_comparison
    if rc is None:
        return []
    return [
        {
            "c": c,
            "mark": MARKS[c.status],
            "criterion": _CRITERIA[c.criterion_id].short if c.criterion_id in _CRITERIA else c.criterion_id,
        }
        for c in rc.changes
    ]
