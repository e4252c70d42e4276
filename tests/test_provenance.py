"""The code version an audit records: the checkout's commit, read from the repository that holds the package."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from medaudit.core import provenance

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout (an installed package)")
def test_a_git_checkout_records_its_commit():
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    provenance.code_version.cache_clear()
    assert provenance.code_version().commit == head.stdout.strip()
