"""How the document writes numbers: one formatter per kind, shared by every section."""

from __future__ import annotations

import math


def iv(point: float, low: float, high: float, digits: int = 2) -> str:
    """`0.93 (0.91–0.95)`; an undefined bound is written `?`."""
    bounds = "–".join("?" if not math.isfinite(x) else f"{x:.{digits}f}" for x in (low, high))
    return f"{point:.{digits}f} ({bounds})"


def signed(point: float, low: float, high: float) -> str:
    """A difference and its interval: `+0.037 (+0.008, +0.073)`."""
    return f"{point:+.3f} ({low:+.3f}, {high:+.3f})"


def pct(x: float) -> str:
    return f"{100 * x:.0f}"


def eps(x: float | None) -> str:
    """An ε to three significant figures, or `—`."""
    return "—" if x is None else f"{x:.3g}"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: header, rule, rows (each cell as given)."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
