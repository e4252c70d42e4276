"""What the report template shows, built from `AuditResults` only: verdict card, scope, threat model, protocol.

Numbers are taken from the record as they are; where the record lacks something the view says so
("not stated", "not recorded") instead of filling it in.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from medaudit.gate import MARKS, NO_CRITERIA, chosen_epsilons, gate_outcome, surrogates_by_row
from medaudit.report import narrative, plots, tables
from medaudit.report.images import example_panels
from medaudit.results import AuditResults, GateRule, IntervalRecord, SurrogateResult

ATLAS = {
    "AML.T0043.002": "Craft Adversarial Data: Black-Box Transfer",
    "AML.T0005": "Create Proxy AI Model",
    "AML.T0005.000": "Create Proxy AI Model: Train Proxy via Gathered AI Artifacts",
    "AML.T0005.001": "Create Proxy AI Model: Train Proxy via Replication",
    "AML.T0005.002": "Create Proxy AI Model: Use Pre-Trained Model",
}
_MEASURES = {"min-relative-auc": "relative AUC (adversarial / clean)",
             "max-adversarial-specific-drop": "adversarial-specific AUC drop (control − adversarial)"}
# each development split as a set of disjoint parts: d1/10 is a tenth of d1, d2/2 half of d2
_PARTS = {"d1": {"d1a", "d1b"}, "d1/10": {"d1a"}, "d2": {"d2a", "d2b"}, "d2/2": {"d2a"},
          "full": {"d1a", "d1b", "d2a", "d2b"}}
_CARD_ORDER = ("name", "architecture", "init", "input_size", "channels", "layout", "dtype", "value_range", "mean", "std",
               "output_kind", "task", "class_names", "positive_index", "input_name", "output_name")


def _value(v: object) -> str:
    if v is None:
        return "not stated"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) if v else "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def verdict_rows(rules: list[GateRule], seeds: dict[str, int]) -> list[dict]:
    """Gate rules grouped by scenario row: endpoint | attack, epsilon | criterion | result | outcome."""
    groups: dict[str, list[dict]] = {}
    for r in rules:
        endpoint, _, criterion = r.rule.rpartition(", ")
        rest = r.id[len(r.row_id) + 1:].split("/") if r.id.startswith(r.row_id + "/") else []
        worst = r.attack_id == "worst-over-attacks"
        key = rest[-1] if rest else ""
        groups.setdefault(r.row_id, []).append({
            "id": r.id, "endpoint": _MEASURES.get(key, endpoint or r.rule), "worst": worst,
            "attack": "all attacks" if worst else r.attack_id,
            "surrogate": _seed_label(rest[0], seeds) if len(rest) == 3 and not worst else None,
            "epsilon": r.epsilon_pm1,
            "criterion": criterion or r.rule, "value": r.value, "status": r.status, "mark": MARKS[r.status],
            "message": r.message})
    return [{"row": row, "rules": items} for row, items in groups.items()]


def _seed_label(surrogate_id: str, seeds: dict[str, int]) -> str:
    return f"surrogate seed {seeds[surrogate_id]}" if surrogate_id in seeds else f"surrogate {surrogate_id}"


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


def _knowledge(s: SurrogateResult, card: dict, trained_on: str, sizes: dict) -> tuple[list[dict], str]:
    t_arch, t_init = card.get("architecture"), card.get("init")
    arch_rel = "unknown (card gives no architecture)" if not t_arch else ("same" if s.arch == t_arch else "different")
    init_rel = "unknown (card gives no init)" if not t_init else ("same" if s.init == t_init else "different")
    data_rel = split_relation(s.split, trained_on)
    n = lambda split: f" ({sizes[split]:,} images)" if isinstance(sizes.get(split), int) else ""  # noqa: E731
    rows = [{"aspect": "development data", "attacker": f"{s.split}{n(s.split)}", "target": f"{trained_on}{n(trained_on)}",
             "relation": data_rel},
            {"aspect": "architecture", "attacker": s.arch, "target": _value(t_arch), "relation": arch_rel},
            {"aspect": "initialisation", "attacker": s.init, "target": _value(t_init), "relation": init_rel}]
    shared = [a for a, ok in (("architecture", arch_rel == "same"),
                              ("ImageNet weights", init_rel == "same" and s.init == "imagenet"),
                              ("development images", "disjoint" not in data_rel)) if ok]
    level = (f"gray-box: the attacker shares the target's {', '.join(shared)}" if shared else
             "black-box: no design component of the target is known to the attacker")
    return rows, level


def threat_rows(results: AuditResults) -> list[dict]:
    """NIST AI 100-2 goal / knowledge / capabilities and MITRE ATLAS ids, per scenario row."""
    sc, card = results.scenario, results.target.get("card") or {}
    trained_on = (sc.get("target") or {}).get("trained_on", "not stated")
    sizes = results.data.get("split_sizes") or {}
    chosen = chosen_epsilons(results)
    eps_all = sc.get("epsilons_pm1") or sorted({c.epsilon_pm1 for c in results.cells})
    caps = sc.get("capabilities") or {}
    by_id = {s.id: s for s in results.surrogates}
    out = []
    for row_id, sids in surrogates_by_row(results).items():
        surrogates = [by_id[s] for s in sids if s in by_id]
        knowledge, level = _knowledge(surrogates[0], card, trained_on, sizes) if surrogates else ([], "not recorded")
        atlas = sorted({a for s in surrogates for a in s.atlas})
        out.append({
            "row_id": row_id, "surrogates": surrogates, "seeds": [s.seed for s in surrogates],
            "goal": f"{sc.get('goal', 'untargeted')}: any change of the target's output away from the true label "
                    "counts (integrity violation)",
            "knowledge": knowledge, "level": level,
            "queries": caps.get("queries_to_target", 0), "input_edit": caps.get("input_edit", "inference_time"),
            "norm": caps.get("norm", "linf"), "epsilons": [(e, e * 127.5) for e in eps_all],
            "chosen": [(a, e, None if e is None else e * 127.5) for a, e in chosen.items()],
            "delivery": sc.get("delivery", "float"),
            "atlas": [(a, ATLAS.get(a, "see MITRE ATLAS")) for a in atlas],
        })
    return out


def card_rows(results: AuditResults) -> list[dict]:
    card, sources = results.target.get("card") or {}, results.target.get("card_sources") or {}
    keys = [k for k in _CARD_ORDER if k in card] + [k for k in card if k not in _CARD_ORDER]
    shown = {k: "any (not fixed by the graph)" if k == "batch_size" and card[k] is None else _value(card[k])
             for k in keys if not (card[k] is None and k in ("mean", "std", "value_range"))}
    return [{"field": k, "value": v, "source": sources.get(k, "—")} for k, v in shown.items()]


def _attacks(results: AuditResults) -> list[dict]:
    seen: dict[str, dict] = {}
    for c in results.cells:
        seen.setdefault(c.attack_id, c.attack)
    rows = [{"id": a, "params": [(k, _value(v)) for k, v in p.items()], "note": None} for a, p in seen.items()]
    return rows + [{"id": c.attack_id, "params": [], "note": "not recorded: no cell of this attack in the results"}
                   for c in results.epsilon_choice if c.attack_id not in seen]


def _flat(d: dict, skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    return [(k, "none" if v is None else _value(v)) for k, v in d.items() if k not in skip and not isinstance(v, dict)]


def build_context(results: AuditResults, *, results_sha256: str | None = None) -> dict:
    """Everything the template renders, in report order."""
    rules, verdict, worst = gate_outcome(results)
    target = results.target
    path = target.get("path", "")
    sha = target.get("sha256", "")
    gate = results.scenario.get("gate") or {}
    no_criteria = gate.get("min_relative_auc") is None and gate.get("max_adversarial_specific_drop") is None
    counts = {s: sum(r.status == s for r in rules) for s in ("PASS", "FAIL", "INCONCLUSIVE", "ERROR")}
    row_order = list(surrogates_by_row(results))
    examples = []
    for e in results.examples:
        examples.append({"e": e, "panels": example_panels(e), "label": narrative.label_text(e.label, results)})
    return {
        "r": results,
        "sc": results.scenario,
        "status_complete": results.status == "complete",
        "verdict": verdict, "verdict_mark": MARKS.get(verdict, ""), "counts": counts,
        "rules": rules, "rule_groups": verdict_rows(rules, {s.id: s.seed for s in results.surrogates}),
        "no_criteria": NO_CRITERIA if no_criteria else None,
        "worst": worst,
        "worst_iv": {k: IntervalRecord(**worst[k]) for k in ("auc_clean", "auc_adversarial", "relative")}
        if worst and "relative" in worst else None,
        "target_name": target.get("name") or (target.get("card") or {}).get("name") or Path(path).name or "unnamed",
        "target_file": Path(path).name, "target_path": path, "sha": sha, "sha16": sha[:16] or "unknown",
        "card_rows": card_rows(results),
        "intended_use": target.get("intended_use") or (target.get("card") or {}).get("intended_use"),
        "load_check": _flat(target.get("load_check") or {}),
        "gate": gate, "threats": threat_rows(results),
        "data_rows": narrative.data_rows(results.data),
        "split_sizes": list((results.data.get("split_sizes") or {}).items()),
        "attacks": _attacks(results), "training": _flat(results.scenario.get("training") or {}),
        "surrogates": sorted(results.surrogates, key=lambda s: (row_order.index(s.row_id), s.seed)),
        "environment": _flat(results.environment, skip=("packages",)),
        "packages": list((results.environment.get("packages") or {}).items()),
        "timings": [(k, v) for k, v in results.timings.items()],
        "results_tables": tables.results_by_row(results),
        "flips": tables.flip_rows(results), "whitebox": tables.whitebox_rows(results),
        "per_class": tables.per_class_rows(results), "annex_cells": tables.annex_rows(results),
        "choices": results.epsilon_choice, "chosen": chosen_epsilons(results),
        "examples": examples,
        "limitations": narrative.limitations(results),
        "recommendations": narrative.recommendations(results),
        "traceability": narrative.TRACEABILITY,
        "scenario_yaml": yaml.safe_dump(results.scenario, sort_keys=False, allow_unicode=True, width=100,
                                        default_flow_style=None),
        "results_sha256": results_sha256,
        "plots": {"auc": plots.auc_vs_epsilon(results), "ssim": plots.ssim_vs_epsilon(results),
                  "bars": plots.relative_auc_bars(results)},
    }
