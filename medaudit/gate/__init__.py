"""The acceptance gate: its outputs (`junit`, `markdown`), the release comparison, and the exit code.

Judging happens once, when the run finishes; `results.json` stores the rules and verdicts, and the outputs only
write them out, so junit.xml, summary.md and the PDF report the same rules and the same counts per outcome.

Imports: `core` and `records` only; the gate reads the record and never judges.
"""

from __future__ import annotations

from medaudit.gate.junit import write_junit
from medaudit.gate.markdown import write_markdown
from medaudit.gate.release_comparison import (
    COMPARE_EXIT,
    compare,
    comparison_junit,
    comparison_markdown,
    read_release,
)

EXIT_CODES = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 1, "ERROR": 2, "PENDING": 2}  # PENDING: the run was never judged


def exit_code(verdict: str) -> int:
    """PASS 0; FAIL or INCONCLUSIVE 1 (an inconclusive bound does not meet the criterion); ERROR 2."""
    if verdict not in EXIT_CODES:
        raise ValueError(f"unknown verdict {verdict!r}")
    return EXIT_CODES[verdict]


__all__ = [
    "COMPARE_EXIT",
    "EXIT_CODES",
    "compare",
    "comparison_junit",
    "comparison_markdown",
    "exit_code",
    "read_release",
    "write_junit",
    "write_markdown",
]
