"""summary.md: the verdict card as a pull-request comment, at most `MAX_LINES` lines and link-free."""

from __future__ import annotations

from pathlib import Path

from medaudit.core import atomic_write
from medaudit.records import MARKS, TIER_LABELS, AuditResults, row_counts_text, tier_label

MAX_LINES = 40  # a pull-request comment a reviewer reads without scrolling


def md(text: object) -> str:
    """User text made safe for a Markdown table cell (no HTML, no column breaks)."""
    return (
        str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|").replace("\n", " ")
    )


def counts_text(results: AuditResults) -> str:
    """`6 rows: 1 pass, 3 fail, 2 inconclusive`: the same words in summary.md as on the PDF's verdict card."""
    return row_counts_text([r.status for r in results.verdict_rows])


def markdown_summary(results: AuditResults) -> str:
    """Verdict, submission readiness, one row per tier and criterion, the worst case: page 1 of the report."""
    verdict, worst = results.verdict, results.worst_case
    gated = ", ".join(TIER_LABELS[v.tier] for v in results.tier_verdicts if v.gated) or "none"
    lines = [
        f"### medaudit verdict: {verdict} {MARKS.get(verdict, '')}".rstrip(),
        "",
        f"Scenario **{md(results.scenario.name)}** · target `{md(Path(results.target.path).name)}` · "
        f"sha256 `{results.target.sha256[:16]}` · gated tiers: {gated}",
        "",
    ]
    if results.readiness is not None and not results.readiness.ready:
        lines += [f"**Not for submission:** {md('; '.join(results.readiness.reasons))}", ""]
    if not results.verdict_rows:
        lines += [f"No criterion was judged (verdict {verdict}): {md(results.gate[0].message if results.gate else '')}"]
    else:
        unverified = any(v.unverified for v in results.tier_verdicts)
        lines += ["| | tier | criterion | result | reason | next step |", "|---|---|---|---|---|---|"]
        for row in results.verdict_rows:
            tier = tier_label(row.tier, row.gated, unverified)
            lines.append(
                f"| {MARKS[row.status]} | {tier} | {row.criterion_id} | {md(row.result)} | {md(row.reason)} | "
                f"{md(row.next_step)} |"
            )
    lines += ["", f"{counts_text(results)}; every gate rule behind them: junit.xml, report.pdf (Annex C)."]
    if worst is not None:
        lines += ["", f"**Worst case:** {md(worst.statement)}"]
    return "\n".join(lines) + "\n"


def write_markdown(results: AuditResults, path: str | Path) -> None:
    atomic_write(Path(path), markdown_summary(results).encode("utf-8"))
