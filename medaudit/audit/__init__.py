"""One audit end to end: `run_audit` takes a scenario and a target through every stage and assembles the
`AuditResults` record.

Imports: every stage before it (`core` … `judging`).
"""

from __future__ import annotations

from medaudit.audit.run import run_audit

__all__ = [
    "run_audit",
]
