"""The regulator-facing report: `results.json` -> HTML (Jinja2, autoescaped) -> PDF/A-3b (WeasyPrint) with the
evidence attached: results.json, summary.md and junit.xml travel inside the PDF.

Page 1 is the verdict; the body (scope, criteria, threat model, method, results, perceptibility, residual risk,
limitations, release comparison) follows shared/REGULATORY.md "Report order"; per-surrogate and per-cell detail
goes to the annexes. The report only reads the record: it never judges.

Imports: `core` and `records` only.
"""

from __future__ import annotations

from medaudit.report.render import write_report

__all__ = ["write_report"]
