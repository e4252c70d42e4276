"""The package reads top to bottom as an audit: no module over 400 lines, no import circle, and no stage that
imports a later one. Imports are read from the source (function-level imports count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "medaudit"
MAX_LINES = 400
# the stages in the order the data flows; a module may import its own stage and earlier ones
STAGES = (
    ("core",),  # errors, files, grey levels, pure metrics, the content cache: what every stage may use
    ("attacks",),  # the attack registry: parameters, tier and how each is crafted
    ("scenario",),  # YAML -> Scenario (its attack specs come from the registry)
    ("records",),  # the typed records between stages, and the run's record
    ("target",),  # the target as a black box, and as torch for the white-box tier
    ("data",),  # the audit images
    ("attackers",),  # the attacker's models: architectures, surrogates, training
    ("engine",),  # plan, executors, and what one job computes
    ("judging",),  # epsilon choice, fitness, breaking epsilon, rules and verdict
    ("audit",),  # the orchestration and the run's assembled record
    ("gate", "report"),  # read the record: exit code, junit, markdown, release comparison; the PDF
    ("publish", "demo", "cli"),  # outputs and the command line
)
STAGE_OF = {name: i for i, names in enumerate(STAGES) for name in names}


def _modules() -> dict[str, Path]:
    """Dotted name (without `medaudit.`) -> file, for every module of the package."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__")
        if name:
            out[name] = path
    return out


def _imports(path: Path, name: str) -> set[str]:
    """The package modules one file imports, as dotted names without `medaudit.`."""
    package = name.rsplit(".", 1)[0] if path.name != "__init__.py" else name
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("medaudit.")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(["medaudit", *parent, base]).rstrip(".")
            if base == "medaudit" or base.startswith("medaudit."):
                # `from package import module` imports that module (the package's __init__ runs first: an edge too)
                inner = base.removeprefix("medaudit").lstrip(".")
                subs = {f"{inner}.{a.name}".lstrip(".") for a in node.names}
                modules = {m for m in subs if m in MODULE_NAMES}
                found |= {f"medaudit.{m}" for m in modules}
                if len(modules) < len(subs) or (inner and inner in MODULE_NAMES and inner != name):
                    found.add(base)
    return {f.removeprefix("medaudit.") for f in found if f != "medaudit"}


def _stage(module: str) -> int:
    top = module.split(".")[0]
    if top not in STAGE_OF:
        pytest.fail(f"medaudit.{module} belongs to no stage of STAGES: place it where its data flows")
    return STAGE_OF[top]


MODULES = _modules()
MODULE_NAMES = set(MODULES)
GRAPH = {name: {m for m in _imports(path, name) if m in MODULES} for name, path in MODULES.items()}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_400_lines(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"medaudit/{MODULES[name].relative_to(PACKAGE)} has {lines} lines: split it"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_stage_imports_a_later_one(name):
    later = sorted(m for m in GRAPH[name] if _stage(m) > _stage(name))
    assert not later, f"medaudit.{name} (stage {_stage(name)}) imports later stages: {later}"


def test_no_import_circles():
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(GRAPH[node]):
            if seen.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                pytest.fail("import circle: " + " -> ".join(f"medaudit.{m}" for m in cycle))
            if nxt not in seen:
                visit(nxt, path + [nxt])
        seen[node] = 2

    for module in sorted(GRAPH):
        if module not in seen:
            visit(module, [module])
