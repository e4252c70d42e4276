"""Page 1, the verdict card: what summary.md says, in the same order, plus the open anomalies and the intended use.

Overall verdict (gated tiers) with its mark; "Not for submission" with each reason; one row per tier and criterion
(result, reason, next step) as the gate recorded them; open anomalies; the intended use quoted; the worst case.
A cell that repeats one above it says so ("as row 2") instead of printing the same words again.
"""

from __future__ import annotations

from pathlib import Path

from medaudit.core import ONE_GREY_LEVEL_PM1
from medaudit.records import (
    CRITERIA,
    MARKS,
    TIER_LABELS,
    AuditResults,
    Provenance,
    grey_text,
    row_counts_text,
    tier_label,
)

_SHORT = {c.id: c.short for c in CRITERIA}


def commit_text(prov: Provenance) -> str:
    """The code commit as every page shows it: marked `+uncommitted` when the package's files differ from it."""
    if prov.code_committed or prov.code_commit.startswith("unknown") or prov.code_commit.endswith("+uncommitted"):
        return prov.code_commit
    return f"{prov.code_commit}+uncommitted"


def counts_text(results: AuditResults) -> str:
    """`6 rows: 1 pass, 3 fail, 2 inconclusive`: the outcomes of page 1's rows, counted over those rows."""
    return row_counts_text([r.status for r in results.verdict_rows])


def attacker_space(results: AuditResults) -> str:
    """The space the attacker works in, in one line: resolution, channels, bit depth, resize, delivery."""
    d, delivery = results.data, results.scenario.delivery
    size = f"{d.image_size}×{d.image_size} px, {'colour' if d.channels == 3 else 'grey'}"
    resize = "no resize" if d.resampling == "none" else f"resized by medaudit ({d.resampling})"
    if delivery == "uint8":
        how = (
            f"delivered as 8-bit files: edits rounded to whole grey levels (1 grey level = 2/255 = "
            f"{ONE_GREY_LEVEL_PM1:.5f} in [-1, 1] units)"
        )
    elif d.bit_depth > 8:
        how = f"delivered at the source's {d.bit_depth} bits, unrounded (finer than one 8-bit grey level)"
    else:
        how = "delivered as floating-point arrays: idealised, not deliverable as a file"
    return f"{size}, {d.bit_depth}-bit source, {resize}; {how}."


def tier_labels_of(results: AuditResults) -> dict[str, str]:
    unverified = any(v.unverified for v in results.tier_verdicts)
    gated = {v.tier: v.gated for v in results.tier_verdicts}
    return {t: tier_label(t, gated.get(t, False), unverified) for t in TIER_LABELS}


def sample_warnings(results: AuditResults) -> list[str]:
    """Each tier whose test images are too few to show a criterion holds, in one sentence."""
    out = []
    for s in results.sample_sizes:
        if s.too_small_for:
            out.append(
                f"Test set too small for the {TIER_LABELS[s.tier]} tier: its {s.images} images ({s.positives} positive, "
                f"{s.negatives} negative) can detect a relative-AUC drop of {s.detectable_relative_drop:.0%} at the "
                f"earliest, more than the margin of {', '.join(s.too_small_for)}: they cannot show that "
                f"{'it holds' if len(s.too_small_for) == 1 else 'these hold'}."
            )
    return out


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
    labels = tier_labels_of(results)
    rows = [
        {
            "n": n,
            "row": row,
            "mark": MARKS[row.status],
            "tier": labels[row.tier],
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
    reported = [TIER_LABELS[v.tier] for v in results.tier_verdicts if not v.gated]
    return {
        "verdict": results.verdict,
        "mark": MARKS.get(results.verdict, ""),
        "gated": ", ".join(gated) or "none",
        "reported": ", ".join(reported),
        "target_file": Path(target.path).name,
        "sha16": target.sha256[:16] or "unknown",
        "commit": commit_text(results.provenance),
        "readiness": results.readiness,
        "reasons": readiness_reasons(results),
        "rows": verdict_rows(results),
        "unjudged": next((r.message for r in results.gate if r.criterion_id not in _SHORT), None),
        "counts": counts_text(results),
        "space": attacker_space(results),
        "sample_warnings": sample_warnings(results),
        "budgets": budget_text(results),
        "anomalies": results.anomalies,
        "intended_use": card.intended_use,
        "worst": results.worst_case,
    }


def budget_text(results: AuditResults) -> str:
    """Per attack, the budget's ε and the near-invisible ε in grey levels: what page 1's ε* stand beside."""
    p = results.scenario.perceptibility
    if p is None:
        return "No perceptibility budget: every ε measured is admissible."
    parts = [
        f"{c.attack_id} {grey_text(c.bound_epsilon_pm1) if c.bound_epsilon_pm1 else 'not reached'}"
        + (f" / {grey_text(c.near_invisible_epsilon_pm1)}" if c.near_invisible_epsilon_pm1 else "")
        for c in results.epsilon_choice
    ]
    return (
        f"Perceptibility budget (mean SSIM ≥ {p.min_mean_ssim:g}) / near-invisible reference (SSIM "
        f"{p.near_invisible_ssim:g}), in grey levels: {'; '.join(parts)}."
    )
