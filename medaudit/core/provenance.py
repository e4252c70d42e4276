"""Which code ran, on what: the git commit of medaudit's own files and the machine's software and hardware.

A run's outputs may be written inside a checkout (the paper reproduction writes into `docs/`); they do not make the
code uncommitted. Only the package's own files count: `medaudit/`, `templates/`, `scenarios/`, `pyproject.toml`.
"""

from __future__ import annotations

import functools
import platform
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

PACKAGE_PATHS = ("medaudit", "templates", "scenarios", "pyproject.toml")  # what decides how an audit computes
PACKAGES = (
    "medaudit",
    "torch",
    "torchvision",
    "onnxruntime",
    "onnx",
    "onnx2torch",
    "adversarial-robustness-toolbox",
    "numpy",
    "scikit-learn",
    "scikit-image",
    "scipy",
    "pydantic",
    "jinja2",
    "weasyprint",
    "matplotlib",
    "ray",
)  # the software whose versions a third party needs to repeat a run
GIT_SECONDS = 10  # longest a git call may take


@dataclass(frozen=True)
class CodeVersion:
    """The code a run used."""

    commit: str  # git commit of the checkout, or why it is unknown ("unknown: ...")
    committed: bool  # the package's own files equal `commit` (False also when it is unknown)

    def __str__(self) -> str:
        return self.commit + ("" if self.committed or self.commit.startswith("unknown") else "+uncommitted")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=GIT_SECONDS
    ).stdout.strip()


@functools.cache
def code_version() -> CodeVersion:
    """The commit of medaudit's checkout and whether its package files are committed; taken once per process."""
    root = Path(__file__).resolve().parents[2]  # the checkout: medaudit/core/provenance.py is two levels down
    if not (root / ".git").exists():
        version = metadata.version("medaudit")
        return CodeVersion(f"unknown: installed from a package, not a git checkout (medaudit {version})", False)
    try:
        commit = _git(root, "rev-parse", "HEAD")
        changed = _git(root, "status", "--porcelain", "--untracked-files=all", "--", *PACKAGE_PATHS)
    except (OSError, subprocess.SubprocessError):
        return CodeVersion("unknown: git is not available", False)
    return CodeVersion(commit, not changed)


def package_versions() -> tuple[tuple[str, str], ...]:
    """(name, version or "not installed") of every package in PACKAGES."""
    out = []
    for name in PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return tuple(out)


def processor() -> str:
    """The CPU model (models depend on it: training is deterministic on one kind of CPU and thread count)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def python_and_platform() -> tuple[str, str]:
    return sys.version.split()[0], platform.platform()
