"""Publish a finished run: the gate's files (junit.xml, summary.md) and the report (HTML, PDF/A with the evidence
attached), all read from the results record; `results.json` itself is never rewritten here."""

from __future__ import annotations

from pathlib import Path

from medaudit.gate import exit_code, write_junit, write_markdown
from medaudit.records import AuditResults


def publish(results: AuditResults, out_dir: Path, *, results_path: Path, render: bool = True) -> list[Path]:
    """Write junit.xml, summary.md and (unless `render` is False) report.html/report.pdf; return their paths."""
    written = [out_dir / "junit.xml", out_dir / "summary.md"]
    write_junit(results, written[0])
    write_markdown(results, written[1])
    if render:
        from medaudit.report import write_report

        written.extend(write_report(results, out_dir, results_path=results_path))
    return written


def finish(results: AuditResults, out_dir: Path, results_path: Path, *, render: bool = True, say=print) -> int:
    """Write junit, summary and report from the record; say where they are and the verdict; return the exit code."""
    for path in publish(results, out_dir, results_path=results_path, render=render):
        if path.suffix == ".pdf":
            say(f"report: {path}")
    say(f"results: {results_path}")
    say(f"verdict: {results.verdict}")
    return exit_code(results.verdict)
