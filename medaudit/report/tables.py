"""Result tables shaped like the paper's (Bortsova et al. 2021, Tables 2-5): per scenario row x attack.

A mean line (over attacks, or over surrogate seeds) averages point estimates only: no interval is
computed for an average, and the table shows none.
"""

from __future__ import annotations

import math
from statistics import fmean

from medaudit.gate import chosen_cells, chosen_epsilons, surrogates_by_row
from medaudit.results import AuditResults, CellRecord

_FIELDS = {"clean": "auc_clean", "adv": "auc_adversarial", "control": "auc_control", "rel": "relative_auc",
           "drop": "adversarial_specific_drop"}


def _seed(results: AuditResults) -> dict[str, int]:
    return {s.id: s.seed for s in results.surrogates}


def _line(cell: CellRecord, seeds: dict[str, int], label: str | None) -> dict:
    line = {"kind": "cell", "attack": cell.attack_id, "surrogate": label, "eps": cell.epsilon_pm1,
            "grey": cell.epsilon_grey_levels, "note": None}
    line.update({k: getattr(cell, f) for k, f in _FIELDS.items()})
    return line


def _mean_line(cells: list[CellRecord], kind: str, attack: str, surrogate: str | None) -> dict:
    def mean(field: str) -> float:
        vals = [getattr(c, field).point for c in cells]
        return fmean(vals) if all(math.isfinite(v) for v in vals) else math.nan

    eps = {c.epsilon_pm1 for c in cells}
    line = {"kind": kind, "attack": attack, "surrogate": surrogate, "eps": eps.pop() if len(eps) == 1 else None,
            "grey": None, "note": None}
    line.update({k: mean(f) for k, f in _FIELDS.items()})
    if kind == "seeds":
        rel = [c.relative_auc.point for c in cells]
        line["note"] = f"relative AUC over {len(cells)} seeds: {100 * min(rel):.1f}–{100 * max(rel):.1f}%"
    return line


def results_by_row(results: AuditResults) -> list[dict]:
    """Per scenario row: a line per attack (per surrogate when a row has several) at the chosen epsilon."""
    chosen, cells, seeds = chosen_epsilons(results), chosen_cells(results), _seed(results)
    out = []
    for row_id, sids in surrogates_by_row(results).items():
        lines, row_cells = [], []
        for attack, eps in chosen.items():
            found = [cells[(s, attack)] for s in sids if (s, attack) in cells]
            if eps is None or not found:
                why = "no ε met the perceptibility bound" if eps is None else f"no cell at the chosen ε {eps:g}"
                lines.append({"kind": "missing", "attack": attack, "note": why})
                continue
            for c in found:
                lines.append(_line(c, seeds, f"seed {seeds.get(c.surrogate_id, '?')}" if len(sids) > 1 else None))
            if len(found) > 1:
                lines.append(_mean_line(found, "seeds", attack, f"mean of {len(found)} seeds"))
            row_cells += found
        attacks = {c.attack_id for c in row_cells}
        if len(attacks) > 1:
            label = "averaged over attacks" if len(attacks) == len(chosen) else \
                f"averaged over {len(attacks)} of {len(chosen)} attacks"
            lines.append(_mean_line(row_cells, "average", label, f"and {len(sids)} seeds" if len(sids) > 1 else None))
        out.append({"row_id": row_id, "lines": lines})
    return out


def _chosen_in_order(results: AuditResults) -> list[CellRecord]:
    chosen = {c.id for c in chosen_cells(results).values()}
    return [c for c in annex_rows(results) if c.id in chosen]


def flip_rows(results: AuditResults) -> list[dict]:
    """Decision flips at 0.5 both ways and sensitivity at the gate's specificity, at the chosen epsilon."""
    seeds = _seed(results)
    rows = []
    for c in _chosen_in_order(results):
        rows.append({"row": c.row_id, "seed": seeds.get(c.surrogate_id), "attack": c.attack_id, "eps": c.epsilon_pm1,
                     "pos_to_neg": c.flips_pos_to_neg, "neg_to_pos": c.flips_neg_to_pos, "control": c.flips_control,
                     "sens_clean": c.sensitivity_clean, "sens_adv": c.sensitivity_adversarial,
                     "threshold": c.threshold_at_specificity})
    return rows


def whitebox_rows(results: AuditResults) -> list[dict]:
    """The surrogate attacked by its own adversarial images beside the transfer result (sanity check)."""
    seeds = _seed(results)
    return [{"row": c.row_id, "seed": seeds.get(c.surrogate_id), "attack": c.attack_id, "eps": c.epsilon_pm1,
             "surrogate_clean": c.surrogate_auc_clean, "surrogate_whitebox": c.surrogate_auc_whitebox,
             "target_adv": c.auc_adversarial.point, "flag": c.whitebox_flag}
            for c in _chosen_in_order(results)]


def per_class_rows(results: AuditResults) -> list[dict]:
    """Multi-label / multi-class runs: per-class clean and adversarial AUC at the chosen epsilon."""
    names = (results.target.get("card") or {}).get("class_names") or []
    out = []
    for c in _chosen_in_order(results):
        if len(c.per_class_auc_clean) < 2:
            continue
        classes = [{"name": names[k] if k < len(names) else f"class {k}", "clean": clean,
                    "adv": c.per_class_auc_adversarial[k] if k < len(c.per_class_auc_adversarial) else math.nan}
                   for k, clean in enumerate(c.per_class_auc_clean)]
        out.append({"row": c.row_id, "attack": c.attack_id, "eps": c.epsilon_pm1, "classes": classes})
    return out


def annex_rows(results: AuditResults) -> list[CellRecord]:
    """Every cell of the grid, ordered by row, surrogate, attack, epsilon."""
    order = {sid: k for k, sid in enumerate(s for sids in surrogates_by_row(results).values() for s in sids)}
    attacks = {a: k for k, a in enumerate(chosen_epsilons(results))}
    return sorted(results.cells, key=lambda c: (order.get(c.surrogate_id, 0), attacks.get(c.attack_id, 0), c.epsilon_pm1))
