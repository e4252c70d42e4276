"""Result tables read from the record: seed spread, clinical harm at the operating point, noise, fitness, the grid.

Nothing here judges: the gate's rules say which surrogate and ε each criterion was decided on, and the
tables show those cells. Summaries over cells (a minimum, a spread) are labelled as such.
"""

from __future__ import annotations

import math

from medaudit.criteria import WORST_OVER_ATTACKS
from medaudit.results import AuditResults, CellRecord, GateRule, SurrogateResult

WHITEBOX_SLACK = 0.05  # the engine flags a cell when transfer beats white-box by more than this (a likely bug)


def _key(e: float) -> float:
    return round(e, 9)


def surrogate_label(s: SurrogateResult | None, sid: str) -> str:
    """`seed 0`, `ensemble of 2 seeds`, or the id when the surrogate is not in the record."""
    if s is None:
        return sid
    return f"ensemble of {len(s.member_ids)}" if s.member_ids else f"seed {s.seed}"


def admissible(results: AuditResults) -> dict[str, tuple[float, ...]]:
    """Attack id -> the ε its perceptibility bound admits."""
    return {c.attack_id: c.admissible_epsilons_pm1 for c in results.epsilon_choice}


def is_admissible(cell: CellRecord, allowed: dict[str, tuple[float, ...]]) -> bool:
    return _key(cell.epsilon_pm1) in {_key(e) for e in allowed.get(cell.attack_id, ())}


def row_order(results: AuditResults) -> list[str]:
    """Scenario rows in run order: from the surrogates, then any row only the cells name."""
    return list(dict.fromkeys([s.row_id for s in results.surrogates] + [c.row_id for c in results.cells]))


def _cells_by(results: AuditResults) -> dict[tuple[str, str, float], CellRecord]:
    return {(c.surrogate_id, c.attack_id, _key(c.epsilon_pm1)): c for c in results.cells}


def judged_cell(results: AuditResults, rule: GateRule) -> CellRecord | None:
    """The cell a rule was decided on (its surrogate, attack and worst ε); None for errors and row summaries."""
    if rule.surrogate_id is None or rule.epsilon_pm1 is None or rule.attack_id == WORST_OVER_ATTACKS:
        return None
    return _cells_by(results).get((rule.surrogate_id, rule.attack_id, _key(rule.epsilon_pm1)))


def repeated_rule(rules: tuple[GateRule, ...] | list[GateRule], rule: GateRule) -> GateRule:
    """The per-attack rule a row's worst-over-attacks rule repeats (same row, criterion, surrogate, ε, interval)."""
    if rule.attack_id != WORST_OVER_ATTACKS:
        return rule
    return next(
        (
            r
            for r in rules
            if r.attack_id != WORST_OVER_ATTACKS
            and (r.row_id, r.criterion_id, r.surrogate_id, r.epsilon_pm1, r.value, r.status)
            == (rule.row_id, rule.criterion_id, rule.surrogate_id, rule.epsilon_pm1, rule.value, rule.status)
        ),
        rule,
    )


def seed_spread_rows(results: AuditResults) -> list[dict]:
    """Per row: relative AUC over its seeds at each admissible ε (min / median / max), ensembles beside them."""
    by_id = {s.id: s for s in results.surrogates}
    allowed = admissible(results)
    judged = {
        (r.row_id, r.attack_id, _key(r.epsilon_pm1), r.surrogate_id)
        for r in results.gate
        if r.criterion_id == "C-REL-AUC" and r.epsilon_pm1 is not None
    }
    ensembles = [
        c
        for c in results.cells
        if c.surrogate_id in by_id and by_id[c.surrogate_id].member_ids and is_admissible(c, allowed)
    ]
    out = []
    for row_id in row_order(results):
        lines = []
        for sp in results.seed_spread:
            if sp.row_id != row_id or _key(sp.epsilon_pm1) not in {_key(e) for e in allowed.get(sp.attack_id, ())}:
                continue
            ens = [
                c
                for c in ensembles
                if c.row_id == row_id and c.attack_id == sp.attack_id and _key(c.epsilon_pm1) == _key(sp.epsilon_pm1)
            ]
            harmful = by_id.get(sp.most_harmful_surrogate_id)
            judged_here = [
                sid for (r, a, e, sid) in judged if (r, a, e) == (row_id, sp.attack_id, _key(sp.epsilon_pm1))
            ]
            lines.append(
                {
                    "attack": sp.attack_id,
                    "eps": sp.epsilon_pm1,
                    "n": sp.n_surrogates,
                    "min": sp.relative_auc_min,
                    "median": sp.relative_auc_median,
                    "max": sp.relative_auc_max,
                    "most_harmful": surrogate_label(harmful, sp.most_harmful_surrogate_id),
                    "ensembles": [
                        (surrogate_label(by_id[c.surrogate_id], c.surrogate_id), c.relative_auc) for c in ens
                    ],
                    "judged": [surrogate_label(by_id.get(s), s) for s in judged_here],
                }
            )
        out.append({"row_id": row_id, "lines": lines})
    return [g for g in out if g["lines"]]


def operating_rows(results: AuditResults) -> list[dict]:
    """The target's decisions at the clinical threshold for each cell a rule was decided on, and the worst case."""
    by_id = {s.id: s for s in results.surrogates}
    cells: dict[str, tuple[CellRecord, list[str]]] = {}
    for rule in results.gate:
        cell = judged_cell(results, rule)
        if cell is not None:
            cells.setdefault(cell.id, (cell, []))[1].append(rule.criterion_id)
    worst = results.worst_case
    if worst is not None:
        cell = _cells_by(results).get((worst.surrogate_id, worst.attack_id, _key(worst.epsilon_pm1)))
        if cell is not None:
            cells.setdefault(cell.id, (cell, []))[1].append("worst case")
    rows = []
    for cell, why in cells.values():
        if cell.operating_point is None:
            continue
        rows.append(
            {
                "row": cell.row_id,
                "attack": cell.attack_id,
                "eps": cell.epsilon_pm1,
                "surrogate": surrogate_label(by_id.get(cell.surrogate_id), cell.surrogate_id),
                "why": ", ".join(dict.fromkeys(why)),
                "op": cell.operating_point,
            }
        )
    order = row_order(results)
    return sorted(
        rows, key=lambda r: (order.index(r["row"]) if r["row"] in order else len(order), r["attack"], r["eps"])
    )


def noise_rows(results: AuditResults) -> list[dict]:
    """Per row and attack: control noise alone (control / clean AUC) where the C-NOISE rule judged it, else the
    lowest control relative AUC over the admissible cells; with the noise's effect at the operating point."""
    allowed = admissible(results)
    rules = {(r.row_id, r.attack_id): r for r in results.gate if r.criterion_id == "C-NOISE"}
    out = []
    for row_id in row_order(results):
        for attack_id in allowed:
            rule = rules.get((row_id, attack_id))
            cell = judged_cell(results, rule) if rule is not None else None
            if cell is None:
                candidates = [
                    c
                    for c in results.cells
                    if c.row_id == row_id
                    and c.attack_id == attack_id
                    and is_admissible(c, allowed)
                    and math.isfinite(c.relative_auc_control.point)
                ]
                cell = min(candidates, key=lambda c: c.relative_auc_control.point, default=None)
            if cell is None:
                continue
            out.append(
                {
                    "row": row_id,
                    "attack": attack_id,
                    "eps": cell.epsilon_pm1,
                    "value": cell.relative_auc_control,
                    "control_auc": cell.auc_control,
                    "rule": rule,
                    "op": cell.operating_point,
                }
            )
    return out


def fitness_rows(results: AuditResults) -> list[dict]:
    """Each surrogate: clean test AUC against the floor, white-box AUC per attack against the bound, fit or why not."""
    order = row_order(results)
    rows = []
    for s in sorted(results.surrogates, key=lambda s: (order.index(s.row_id), bool(s.member_ids), s.seed)):
        f = s.fitness
        rows.append(
            {
                "s": s,
                "label": surrogate_label(s, s.id),
                "fitness": f,
                "floor_met": None if f is None else s.test_auc.low >= f.test_auc_floor,
                "budget": s.stop_reason == "budget",
            }
        )
    return rows


def whitebox_check(cell: CellRecord) -> tuple[str, str]:
    """(css status, words): the rule is that an attack hurts its own surrogate at least as much as the target."""
    if cell.whitebox_flag:
        return "fail", f"✖ transfer beat white-box by > {WHITEBOX_SLACK:g}: suspect a bug"
    if cell.surrogate_auc_whitebox > cell.auc_adversarial.point:
        return "inconclusive", f"! transfer beat white-box (by ≤ {WHITEBOX_SLACK:g})"
    return "pass", "✓ white-box ≤ transfer"


def per_class_rows(results: AuditResults) -> list[dict]:
    """Multi-label / multi-class runs: per-class clean and adversarial AUC of each cell a rule was decided on."""
    names = results.target.card.class_names or results.data.class_names
    out, seen = [], set()
    for rule in results.gate:
        c = judged_cell(results, rule)
        if c is None or c.id in seen or len(c.per_class_auc_clean) < 2:
            continue
        seen.add(c.id)
        classes = [
            {
                "name": names[k] if k < len(names) else f"class {k}",
                "clean": clean,
                "adv": c.per_class_auc_adversarial[k] if k < len(c.per_class_auc_adversarial) else math.nan,
            }
            for k, clean in enumerate(c.per_class_auc_clean)
        ]
        out.append({"row": c.row_id, "attack": c.attack_id, "eps": c.epsilon_pm1, "classes": classes})
    return out


def annex_rows(results: AuditResults) -> list[dict]:
    """Every cell of the grid, ordered by row, surrogate, attack, ε; admissible ones marked; white-box check."""
    by_id = {s.id: s for s in results.surrogates}
    surrogate_order = {s.id: k for k, s in enumerate(r["s"] for r in fitness_rows(results))}
    attacks = {a: k for k, a in enumerate(admissible(results))}
    allowed = admissible(results)
    cells = sorted(
        results.cells,
        key=lambda c: (
            surrogate_order.get(c.surrogate_id, len(surrogate_order)),
            attacks.get(c.attack_id, len(attacks)),
            c.epsilon_pm1,
        ),
    )
    return [
        {
            "c": c,
            "surrogate": surrogate_label(by_id.get(c.surrogate_id), c.surrogate_id),
            "admissible": is_admissible(c, allowed),
            "check": whitebox_check(c),
        }
        for c in cells
    ]
