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


def describe_validation_error(err) -> str:
    """One line for a pydantic ValidationError: the most specific error (deepest field path), with
    union-branch names dropped from the path, e.g. "field `attacks.0.pgd.stepsize`: unknown key"."""
    errors = sorted(err.errors(), key=lambda e: -len(e["loc"]))
    first = errors[0]
    loc = ".".join(
        str(p) for p in first["loc"] if not (str(p)[:1].isupper() or "[" in str(p) or str(p).startswith("function-"))
    )
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key (check spelling; `medaudit schema` lists the allowed keys)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"field `{loc or '(top level)'}`: {msg}{more}"
