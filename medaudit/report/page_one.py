"""Page 1, the verdict card: what summary.md says, in the same order, plus the open anomalies and the intended use.

Overall verdict (gated tiers) with its mark; "Not for submission" with each reason; one row per tier and criterion
(result, reason, next step) as the gate recorded them; open anomalies; the intended use quoted; the worst case.
A cell that repeats one above it says so ("as row 2") instead of printing the same words again.
"""

from __future__ import annotations

from pathlib import Path

from medaudit.records import CRITERIA, MARKS, AuditResults, Provenance, count_outcomes

TIER_LABELS = {"transfer": "transfer", "query": "query", "whitebox": "white-box"}
_SHORT = {c.id: c.short for c in CRITERIA}


def commit_text(prov: Provenance) -> str:
    """The code commit as every page shows it: marked `+uncommitted` when the package's files differ from it."""
    if prov.code_committed or prov.code_commit.startswith("unknown") or prov.code_commit.endswith("+uncommitted"):
        return prov.code_commit
    return f"{prov.code_commit}+uncommitted"


def counts_text(results: AuditResults) -> str:
    """`3 pass, 10 fail, 5 inconclusive, 0 error`: the words summary.md uses."""
    return ", ".join(f"{n} {outcome.lower()}" for outcome, n in count_outcomes(results.gate).items())


def _referenced(rows: list[dict], key: str) -> None:
    """Replace a cell equal to one in an earlier row by a reference to that row."""
    first: dict[str, int] = {}
    for row in rows:
        text = row[key]
        if text in first:
            row[key + "_ref"] = first[text]
        else:
            first[text] = row["n"]
            row[key + "_ref"] = None


def verdict_rows(results: AuditResults) -> list[dict]:
    """The gate's page-1 rows, numbered, with repeated reasons and next steps referring to their first row."""
    rows = [
        {
            "n": n,
            "row": row,
            "mark": MARKS[row.status],
            "tier": TIER_LABELS[row.tier] + ("" if row.gated else " (bound)"),
            "criterion": _SHORT.get(row.criterion_id, row.criterion_id),
            "reason": row.reason,
            "next_step": row.next_step,
        }
        for n, row in enumerate(results.verdict_rows, start=1)
    ]
    _referenced(rows, "reason")
    _referenced(rows, "next_step")
    return rows


def readiness_reasons(results: AuditResults) -> list[tuple[str, str | None]]:
    """Each reason the record is not ready, as (text, anomaly id); a reason that is an open anomaly names its id
    only, since the anomaly is listed beside it."""
    if results.readiness is None or results.readiness.ready:
        return []
    anomaly_reason = {f"open anomaly {a.id}: {a.text}": a.id for a in results.anomalies}
    return [(reason, anomaly_reason.get(reason)) for reason in results.readiness.reasons]


def page_one(results: AuditResults) -> dict:
    target, card = results.target, results.target.card
    gated = [TIER_LABELS[v.tier] for v in results.tier_verdicts if v.gated]
    bounds = [TIER_LABELS[v.tier] for v in results.tier_verdicts if not v.gated]
    return {
        "verdict": results.verdict,
        "mark": MARKS.get(results.verdict, ""),
        "gated": ", ".join(gated) or "none",
        "bounds": ", ".join(bounds),
        "target_file": Path(target.path).name,
        "sha16": target.sha256[:16] or "unknown",
        "commit": commit_text(results.provenance),
        "readiness": results.readiness,
        "reasons": readiness_reasons(results),
        "rows": verdict_rows(results),
        "unjudged": next((r.message for r in results.gate if r.criterion_id not in _SHORT), None),
        "counts": counts_text(results),
        "n_rules": len(results.gate),
        "anomalies": results.anomalies,
        "intended_use": card.intended_use,
        "worst": results.worst_case,
    }
