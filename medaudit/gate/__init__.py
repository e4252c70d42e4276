"""The acceptance gate: judging (`judge`, `verdict`) and its outputs (`junit`, `markdown`), and the exit code.

Judging happens once, when the run finishes; `results.json` stores the rules and verdicts, and the outputs only
write them out, so junit.xml, summary.md and the PDF report the same rules and the same counts per outcome.
"""

from __future__ import annotations

EXIT_CODES = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 1, "ERROR": 2, "PENDING": 2}  # PENDING: the run was never judged


def exit_code(verdict: str) -> int:
    """PASS 0; FAIL or INCONCLUSIVE 1 (an inconclusive bound does not meet the criterion); ERROR 2."""
    if verdict not in EXIT_CODES:
        raise ValueError(f"unknown verdict {verdict!r}")
    return EXIT_CODES[verdict]
