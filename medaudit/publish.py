"""Publish a finished run: the gate's files (junit.xml, summary.md) and the report (HTML, PDF), all read
from the results record; `results.json` itself is never rewritten here."""

from __future__ import annotations

from pathlib import Path

from medaudit import gate
from medaudit.results import AuditResults


def publish(results: AuditResults, out_dir: Path, *, results_path: Path, render: bool = True) -> list[Path]:
    """Write junit.xml, summary.md and (unless `render` is False) report.html/report.pdf; return their paths."""
    written = [out_dir / "junit.xml", out_dir / "summary.md"]
    gate.write_junit(results, written[0])
    gate.write_markdown(results, written[1])
    if render:
        from medaudit.report import write_report

        written.extend(write_report(results, out_dir, results_path=results_path))
    return written
