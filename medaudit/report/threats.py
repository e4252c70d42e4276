"""The threat model in NIST AI 100-2 (E2025) words: per tier the attacker's knowledge and access, per transfer row what
the attacker knows of the target (development data, architecture, initialisation) and the MITRE ATLAS techniques."""

from __future__ import annotations

from medaudit.records import AuditResults, SurrogateResult
from medaudit.report.method import TIER_ORDER

ATLAS = {
    "AML.T0043.000": "Craft Adversarial Data: White-Box Optimization",
    "AML.T0043.001": "Craft Adversarial Data: Black-Box Optimization",
    "AML.T0043.002": "Craft Adversarial Data: Black-Box Transfer",
    "AML.T0040": "AI Model Inference API Access",
    "AML.T0044": "Full AI Model Access",
    "AML.T0005": "Create Proxy AI Model",
    "AML.T0005.000": "Create Proxy AI Model: Train Proxy via Gathered AI Artifacts",
    "AML.T0005.001": "Create Proxy AI Model: Train Proxy via Replication",
    "AML.T0005.002": "Create Proxy AI Model: Use Pre-Trained Model",
}
TIER_THREATS = {  # tier -> (knowledge, access, ATLAS ids)
    "transfer": (
        "black-box or gray-box, by row (below): no weights, gradients or outputs of the target; the attacker trains "
        "surrogate models on data it gathered and crafts its perturbations on them",
        "no query to the target before the attack; edits images handed to the deployed model",
        ("AML.T0005", "AML.T0043.002"),
    ),
    "query": (
        "black-box: no weights, architecture or training data of the target",
        "the target's class probabilities for images it submits (score access), within a per-image query budget",
        ("AML.T0040", "AML.T0043.001"),
    ),
    "whitebox": (
        "white-box: the target's weights and architecture (an insider, the manufacturer, or a leaked model file)",
        "the target's gradients, as many as it wants",
        ("AML.T0044", "AML.T0043.000"),
    ),
}
# each development split as a set of disjoint parts: d1/10 is a tenth of d1, d2/2 half of d2
_PARTS = {
    "d1": {"d1a", "d1b"},
    "d1/10": {"d1a"},
    "d2": {"d2a", "d2b"},
    "d2/2": {"d2a"},
    "full": {"d1a", "d1b", "d2a", "d2b"},
}


def split_relation(surrogate_split: str, target_split: str) -> str:
    """How the surrogate's development data relates to the target's (the paper's data parity / disparity)."""
    s, t = _PARTS.get(surrogate_split), _PARTS.get(target_split)
    if s is None or t is None:
        return "relation unknown"
    if s == t:
        return "the target's own (parity)"
    if not s & t:
        return "disjoint (disparity)"
    if s < t:
        return "part of the target's"
    if s > t:
        return "contains the target's"
    return "overlaps the target's"


def _relation(attacker: str, target: str | None) -> str:
    if not target:
        return "unknown (card does not say)"
    return "same" if attacker == target else "different"


def knowledge(s: SurrogateResult, results: AuditResults) -> dict:
    """What one transfer row's attacker shares with the target, and its NIST AI 100-2 knowledge level."""
    card, trained_on = results.target.card, results.scenario.target.trained_on
    data = split_relation(s.split, trained_on)
    arch, init = _relation(s.arch, card.architecture), _relation(s.init, card.init)
    shared = ["architecture"] if arch == "same" else []
    if init == "same" and s.init == "imagenet":  # a random initialisation is no knowledge; ImageNet weights are
        shared.append("ImageNet weights" if arch == "same" else "ImageNet pre-training")
    if "disjoint" not in data and data != "relation unknown":
        shared.append("development images")
    return {
        "data": f"{s.split}: {data}",
        "arch": f"{s.arch} ({arch})",
        "init": f"{s.init} ({init})",
        "level": f"gray-box: shares {', '.join(shared)}" if shared else "black-box: shares no design component",
    }


def tier_rows(results: AuditResults) -> list[dict]:
    """One line per tier the scenario names: knowledge, access, budget and ATLAS ids."""
    specs = {a.id: a for a in results.scenario.attacks}
    out = []
    for tier in sorted({a.tier for a in results.scenario.attacks}, key=TIER_ORDER.__getitem__):
        know, access, atlas = TIER_THREATS[tier]
        budget = []
        for spec in (s for s in specs.values() if s.tier == tier):
            images = getattr(spec, "images", None)
            on = f" on {images} test images" if images else ""
            queries = getattr(spec, "queries_per_image", None)
            budget.append(f"{spec.id}: " + (f"{queries} queries per image{on}" if queries else f"all gradients{on}"))
        out.append(
            {
                "tier": tier,
                "knowledge": know,
                "access": access,
                "budget": "; ".join(budget) if tier != "transfer" else "0 queries; surrogates listed below",
                "atlas": [(a, ATLAS[a]) for a in atlas],
            }
        )
    return out


def row_threats(results: AuditResults) -> list[dict]:
    """One line per scenario row of the transfer tier: its knowledge, its attackers and its ATLAS ids."""
    out = []
    rows = dict.fromkeys(r.row_id for r in results.scenario.surrogate_rows())
    for row_id in rows:
        mine = [s for s in results.surrogates if s.row_id == row_id]
        seeds = [s for s in mine if s.role == "attacker" and not s.member_ids]
        if not seeds:
            out.append({"row_id": row_id, "threat_id": f"T-{row_id}", "k": None, "attackers": "none recorded"})
            continue
        ensembles = sum(1 for s in mine if s.member_ids)
        probes = sum(1 for s in mine if s.role == "probe")
        attackers = f"{len(seeds)} seeds" + (f" + {ensembles} ensemble" if ensembles else "")
        out.append(
            {
                "row_id": row_id,
                "threat_id": f"T-{row_id}",
                "k": knowledge(seeds[0], results),
                "attackers": attackers + (f"; {probes} probe" if probes else ""),
                "atlas": sorted({a for s in mine for a in s.atlas}),
            }
        )
    return out


def atlas_names(results: AuditResults) -> list[tuple[str, str]]:
    """Every ATLAS id the report cites, with its name, once."""
    ids = {a for row in row_threats(results) for a in row.get("atlas", ())}
    ids |= {a for row in tier_rows(results) for a, _ in row["atlas"]}
    return [(a, ATLAS.get(a, "see MITRE ATLAS")) for a in sorted(ids)]
