"""The one error type for bad user input: it names the file, the field and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AuditInputError(Exception):
    """Bad input a user can fix: the CLI prints it on one line and exits 2."""


def look_up_option(name: str, options: Iterable[str], *, what: str, where: str) -> str:
    """Return `name` if it is one of `options`, else raise naming the valid ones and the nearest."""
    valid = list(options)
    if name in valid:
        return name
    near = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise AuditInputError(f"{where}: unknown {what} {name!r}; valid: {', '.join(valid)}{hint}")
