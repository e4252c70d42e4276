"""The content cache every executor shares: one key scheme, one folder layout, atomic writes.

A key is the sha256 of a job's kind, the cache scheme, the hash of the code that computes that kind,
and the job's own fields as canonical JSON. Same inputs, same code: same key, so a re-run (or a Ray
worker on another machine that sees the same folder) finds the result instead of recomputing it.
Entries are written atomically and arrays before records, so a record on disk always has its arrays.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from medaudit.core.files import atomic_write

SCHEME = "medaudit-cache-3"  # bump when the layout changes: old entries are then ignored, never misread
_MODEL = ("attackers/zoo", "attackers/surrogates", "data/audit_data", "core/pixels")  # what decides a trained surrogate
_ATTACK = _MODEL + ("attacks",)  # ... and the images an attack crafts on it
_TARGET = (
    "target/card",
    "target/runners",
    "target/black_box",
    "target/differentiable",
)  # how the target is read and run
_MEASURE = ("core/metrics", "engine/measure", "records/measurements")  # what is computed from scores
# the modules whose code determines each kind of entry: editing one invalidates exactly those entries
CODE = {
    "surrogate": _MODEL,
    "adversarial": _ATTACK,
    "attacker": _ATTACK + _MEASURE,
    "reference": ("data/audit_data", "core/pixels") + _TARGET + _MEASURE,
    "search": _ATTACK + _TARGET + _MEASURE,
    "cell": _ATTACK + _TARGET + _MEASURE,
    "bound": _ATTACK + _TARGET + _MEASURE,
    "refine": _ATTACK + _TARGET + _MEASURE + ("engine/refine",),
}


@functools.cache
def code_version(kind: str) -> str:
    """Hash of the modules behind `kind` (every file of a package), taken once per process, so edits mid-run cannot
    split a run's keys."""
    h = hashlib.sha256()
    package = Path(__file__).parents[1]
    for name in CODE[kind]:
        files = sorted((package / name).glob("*.py")) if (package / name).is_dir() else [package / f"{name}.py"]
        for file in files:
            h.update(file.read_bytes())
    return h.hexdigest()[:12]


def content_key(kind: str, fields: object) -> str:
    """The one key scheme: kind, scheme, code version and the job's fields (canonical JSON)."""
    payload = json.dumps([SCHEME, kind, code_version(kind), fields], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class Cache:
    """A folder of entries `<kind>/<key>.json` (a record) and `<kind>/<key>.npz` (its arrays)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / f"{key}{suffix}"

    def file(self, kind: str, key: str, suffix: str) -> Path:
        """Where an entry's extra file lives (e.g. surrogate weights `.pt`); the caller writes it atomically."""
        return self._path(kind, key, suffix)

    def has(self, kind: str, key: str) -> bool:
        return self._path(kind, key, ".json").is_file()

    def load_record(self, kind: str, key: str) -> str | None:
        path = self._path(kind, key, ".json")
        return path.read_text() if path.is_file() else None

    def load_arrays(self, kind: str, key: str) -> dict[str, np.ndarray]:
        with np.load(self._path(kind, key, ".npz")) as npz:
            return {name: npz[name] for name in npz.files}

    def store(self, kind: str, key: str, record_json: str, arrays: dict[str, np.ndarray] | None = None) -> None:
        """Arrays first, then the record, each atomically."""
        if arrays is not None:
            atomic_write(self._path(kind, key, ".npz"), lambda f: np.savez_compressed(f, **arrays))
        atomic_write(self._path(kind, key, ".json"), record_json)
