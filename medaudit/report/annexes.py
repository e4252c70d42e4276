"""The annexes' tables: every attacker with its training and fitness per attack, the spread over seeds, every gate
rule, every cell, and what a third party needs to reproduce the run. Detail lives here so the body stays short."""

from __future__ import annotations

import yaml

from medaudit.records import MARKS, AuditResults
from medaudit.report.findings import attacker_label, threat_order
from medaudit.report.page_one import commit_text

ATTACHMENTS = (  # (file name, what it is, PDF/A-3 AFRelationship)
    ("results.json", "the run's complete record this report was rendered from", "Source"),
    ("summary.md", "page 1 as Markdown (pull-request comment)", "Supplement"),
    ("junit.xml", "every gate rule as a test case, with its full message", "Supplement"),
)


def _key(e: float) -> float:
    return round(e, 9)


def _order(results: AuditResults) -> dict[str, int]:
    return {row: k for k, row in enumerate(threat_order(results))}


def surrogate_rows(results: AuditResults) -> tuple[list[str], list[dict]]:
    """Every surrogate (attackers, ensembles, probes) with its training and, per transfer attack, its fitness."""
    attacks = [a.id for a in results.scenario.attacks if a.tier == "transfer"]
    order = _order(results)
    rank = {"attacker": 0, "probe": 1}
    surrogates = sorted(
        results.surrogates,
        key=lambda s: (order.get(s.row_id, len(order)), rank[s.role], bool(s.member_ids), s.seed),
    )
    rows = []
    for s in surrogates:
        fitness = []
        for attack in attacks:
            f = s.fitness_for(attack)
            if f is None:
                fitness.append(None)
                continue
            drop = f.transfer.drop_beyond_control if f.transfer else None
            fitness.append(
                {
                    "fit": f.fit,
                    "learned": f.test_auc.low >= f.test_auc_floor,
                    "drop": drop,
                    "moves": drop is not None and drop.low > f.transfer_floor,
                    "eps": f.epsilon_pm1,
                    "whitebox": f.whitebox_auc,
                }
            )
        role = "probe" if s.role == "probe" else attacker_label(s, s.id)
        rows.append({"s": s, "role": role, "fitness": fitness})
    return attacks, rows


def spread_rows(results: AuditResults) -> list[dict]:
    """Per row, attack and admissible epsilon: relative AUC over the row's seeds, and the ensemble beside them."""
    admissible = {c.attack_id: {_key(e) for e in c.admissible_epsilons_pm1} for c in results.epsilon_choice}
    ensembles = {
        (c.row_id, c.attack_id, _key(c.epsilon_pm1)): c.relative_auc
        for c in results.cells
        if c.tier == "transfer" and len(c.member_ids) > 1
    }
    order = _order(results)
    lines = [sp for sp in results.seed_spread if _key(sp.epsilon_pm1) in admissible.get(sp.attack_id, set())]
    lines.sort(key=lambda sp: (order.get(sp.row_id, len(order)), sp.attack_id, sp.epsilon_pm1))
    by_id = {s.id: s for s in results.surrogates}
    return [
        {
            "sp": sp,
            "ensemble": ensembles.get((sp.row_id, sp.attack_id, _key(sp.epsilon_pm1))),
            "harmful": attacker_label(by_id.get(sp.most_harmful_surrogate_id), sp.most_harmful_surrogate_id),
        }
        for sp in lines
    ]


def rule_rows(results: AuditResults) -> list[dict]:
    """Every gate rule, in threat order: what junit.xml carries, less the message (attached there in full)."""
    order = _order(results)
    by_id = {s.id: s for s in results.surrogates}
    rules = sorted(enumerate(results.gate), key=lambda kr: (order.get(kr[1].row_id, len(order)), kr[0]))
    return [
        {"r": r, "mark": MARKS[r.status], "attacker": attacker_label(by_id.get(r.attacker_id or ""), r.attacker_id)}
        for _, r in rules
    ]


def cell_rows(results: AuditResults) -> list[dict]:
    """Every cell: threat row, attacker, attack, epsilon; admissible ones marked."""
    order = _order(results)
    admissible = {c.attack_id: {_key(e) for e in c.admissible_epsilons_pm1} for c in results.epsilon_choice}
    by_id = {s.id: s for s in results.surrogates}
    cells = sorted(
        results.cells,
        key=lambda c: (order.get(c.row_id, len(order)), c.attacker_id, c.attack_id, c.epsilon_pm1),
    )
    return [
        {
            "c": c,
            "attacker": attacker_label(by_id.get(c.attacker_id), c.attacker_id),
            "admissible": _key(c.epsilon_pm1) in admissible.get(c.attack_id, set()),
        }
        for c in cells
    ]


def provenance_rows(results: AuditResults, results_sha256: str | None) -> list[tuple[str, str, bool]]:
    """(field, value, is a hash) for the reproducibility table."""
    p, t, d, env = results.provenance, results.target, results.data, results.environment
    packages = "; ".join(f"{x.name} {x.version}" for x in env.packages)
    gpu = f" ({env.gpu})" if env.gpu else ""
    return [
        ("code commit", commit_text(p), True),
        ("medaudit version", p.medaudit_version, False),
        ("exact command", p.command, False),
        ("run", f"{p.started_at} → {p.finished_at or 'not finished'}", False),
        ("scenario file", p.scenario_path, False),
        ("scenario file sha256", p.scenario_file_sha256, True),
        (
            "scenario canonical sha256 (validated scenario as sorted JSON, not the file)",
            p.scenario_canonical_sha256,
            True,
        ),
        ("target file", t.path, False),
        ("target sha256", t.sha256, True),
        ("data", f"{d.source} → {d.resolved_path}", False),
        ("data sha256", d.sha256, True),
        ("split ids sha256", d.split_ids_sha256, True),
        ("results.json sha256", results_sha256 or "not saved", True),
        ("results schema", results.schema_version, False),
        ("environment", f"python {env.python}; {env.platform}; {env.processor}; {env.device}{gpu}", False),
        ("executor", f"{env.executor}, {env.cpu_threads} CPU threads", False),
        ("packages", packages, False),
    ]


def timing_text(results: AuditResults) -> str:
    t, x = results.timings, results.execution
    parts = []
    if t is not None:
        parts.append(
            f"load {t.load_seconds:.0f} s, training {t.train_seconds:.0f} s, ε search {t.search_seconds:.0f} s, "
            f"transfer cells {t.cells_seconds:.0f} s, query and white-box tiers {t.bounds_seconds:.0f} s, total {t.total_seconds:.0f} s"
        )
    if x is not None:
        parts.append(
            f"{x.surrogates_trained} surrogates trained and {x.surrogates_cached} from the cache; "
            f"{x.cell_jobs_computed} cell jobs computed and {x.cell_jobs_cached} from the cache"
        )
    parts.append(f"{results.target_queries:,} images scored by the target in all")
    return "; ".join(parts)


def scenario_yaml(results: AuditResults) -> str:
    return yaml.safe_dump(
        results.scenario.model_dump(mode="json"),
        sort_keys=False,
        allow_unicode=True,
        width=110,
        default_flow_style=None,
    )
