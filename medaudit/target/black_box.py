"""The deployed model under audit, as a black box: canonical [-1, 1] images in, class scores out.

`medaudit.target.card` resolves the model's input/output contract (the `TargetCard`); here images are mapped onto that
contract and back (`to_target` / `from_target`), the model's outputs are checked against the card on the audit
images, and its raw outputs become probability-like scores. A `Target` is immutable: each job counts the images
it sends with its own `TargetQueries`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from medaudit.core import AuditInputError, sha256_file
from medaudit.records import LoadCheck
from medaudit.scenario import CardFields
from medaudit.target.card import TargetCard, read_card
from medaudit.target.runners import OnnxRunner, TorchScriptRunner

SCORE_BATCH = 256  # images per call to the runner, unless the graph fixes its batch
DETERMINISM_TOLERANCE = 1e-4  # the same input may change an output by at most this (eval-mode export)
PROBABILITY_TOLERANCE = 1e-3  # softmax rows must sum to 1 within this


# ---------------------------------------------------------------- canonical <-> target contract
def to_target(x_pm1: np.ndarray, card: CardFields) -> np.ndarray:
    """Map canonical images (N, C, H, W) float32 in [-1, 1] onto the target's input contract."""
    x = (np.asarray(x_pm1, dtype=np.float32) + 1.0) / 2.0
    if x.shape[1] == 1 and card.channels == 3:
        x = np.repeat(x, 3, axis=1)
    if card.mean is not None:
        mean = np.asarray(card.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(card.std, np.float32).reshape(1, -1, 1, 1)
        x = (x - mean) / std
    else:
        lo, hi = card.value_range
        x = lo + x * (hi - lo)
    if card.dtype == "uint8":
        x = np.clip(np.rint(x), 0, 255)
    if card.layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x.astype(card.dtype))


def from_target(x: np.ndarray, card: CardFields) -> np.ndarray:
    """Inverse of `to_target`: target-contract images back to canonical (N, C, H, W) in [-1, 1]."""
    x = np.asarray(x, dtype=np.float32)
    if card.layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    if card.mean is not None:
        mean = np.asarray(card.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(card.std, np.float32).reshape(1, -1, 1, 1)
        x01 = x * std + mean
    else:
        lo, hi = card.value_range
        x01 = (x - lo) / (hi - lo)
    return np.ascontiguousarray(x01 * 2.0 - 1.0, dtype=np.float32)


def outputs_to_scores(out: np.ndarray, card: CardFields) -> np.ndarray:
    """Raw output rows -> probabilities (float64; sigmoid/softmax of logits, monotone per class)."""
    out = np.asarray(out, dtype=np.float64)
    if card.output_kind == "logits":
        if card.task == "multiclass" or (card.task == "binary" and out.shape[1] == 2):
            z = out - out.max(axis=1, keepdims=True)
            out = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        else:
            out = 1.0 / (1.0 + np.exp(-out))
    if card.task == "binary":
        return out[:, 0] if out.shape[1] == 1 else out[:, card.positive_index if card.positive_index is not None else 1]
    return out


def class_probabilities(scores: np.ndarray, task: str) -> np.ndarray:
    """Scores as (N, K) class probabilities, the form a score-based attacker reads: binary -> [1 - p, p]."""
    return np.stack([1.0 - scores, scores], axis=1) if task == "binary" else scores


# ---------------------------------------------------------------- the target
@dataclass(frozen=True)
class Target:
    """A loaded black-box target: its file, its complete card and the runner that executes it."""

    path: Path
    sha256: str
    card: TargetCard
    runner: OnnxRunner | TorchScriptRunner
    load_check: LoadCheck | None = None  # set by `checked`

    @property
    def device(self) -> str:
        return self.runner.device

    def raw_outputs(self, x_pm1: np.ndarray, batch_size: int = SCORE_BATCH) -> np.ndarray:
        """The model's raw output rows (N, n_out) for canonical images, batched (padded if the graph is fixed)."""
        fixed = self.card.batch_size
        step = fixed or batch_size
        rows = []
        for start in range(0, len(x_pm1), step):
            chunk = x_pm1[start : start + step]
            n = len(chunk)
            if fixed and n < fixed:  # a fixed-batch graph: pad with copies, drop their rows
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
            out = np.asarray(self.runner(to_target(chunk, self.card), self.card.input_name, self.card.output_name))
            rows.append(out.reshape(out.shape[0], -1)[:n].astype(np.float64))
        return np.concatenate(rows) if rows else np.zeros((0, self.card.n_outputs))

    def scores(self, x_pm1: np.ndarray, batch_size: int = SCORE_BATCH) -> np.ndarray:
        """Probability-like scores: (N,) of the positive class (binary) or (N, K); float64."""
        return outputs_to_scores(self.raw_outputs(x_pm1, batch_size), self.card)

    def calls(self, n_images: int, batch_size: int = SCORE_BATCH) -> int:
        """Runner calls needed to score `n_images` (a fixed batch pads the last one)."""
        return math.ceil(n_images / (self.card.batch_size or batch_size))

    def checked(self, x_pm1: np.ndarray) -> "Target":
        """This target with its load check: run the model on audit images and check its outputs against the card
        (columns, finite, deterministic, softmax rows summing to one, probabilities in [0, 1]); raise on a mismatch."""
        card, where = self.card, f"{self.path}"
        out = self.raw_outputs(x_pm1)
        expected = {"binary": (1, 2)}.get(card.task, (card.n_outputs,))
        if out.shape[1] not in expected:
            want = " or ".join(map(str, expected))
            raise AuditInputError(
                f"{where}: the model gives {out.shape[1]} output column(s), the card's task "
                f"{card.task!r} with {card.n_outputs} class name(s) needs {want}; fix card "
                "`task`/`class_names` or `output_name`"
            )
        if not np.all(np.isfinite(out)):
            raise AuditInputError(
                f"{where}: the model returns NaN/inf on the audit images; check the card's value_range or mean/std"
            )
        max_diff = float(np.max(np.abs(self.raw_outputs(x_pm1) - out)))
        if max_diff > DETERMINISM_TOLERANCE:
            raise AuditInputError(
                f"{where}: the same input gave outputs differing by {max_diff:.3g}; export "
                "the model in eval mode (dropout and batch-norm updates off)"
            )
        if card.output_kind == "softmax" and out.shape[1] > 1:
            worst = float(np.max(np.abs(out.sum(axis=1) - 1)))
            if worst > PROBABILITY_TOLERANCE:
                raise AuditInputError(
                    f"{where}: card says output_kind softmax but rows sum to 1 +/- {worst:.3g}; "
                    "set output_kind to logits or sigmoid"
                )
        if card.output_kind in ("softmax", "sigmoid") and (out.min() < -1e-6 or out.max() > 1 + 1e-6):
            raise AuditInputError(
                f"{where}: card says output_kind {card.output_kind} but outputs leave [0, 1] "
                f"(min {out.min():.3g}, max {out.max():.3g}); set output_kind to logits"
            )
        check = LoadCheck(
            images=len(x_pm1), output_columns=int(out.shape[1]), deterministic_max_diff=max_diff, passed=True
        )
        return replace(self, load_check=check)


@dataclass
class TargetQueries:
    """The images one job sends to the target: every image scored is a query (padding of a fixed batch is not)."""

    target: Target
    images: int = 0
    calls: int = 0

    def raw_outputs(self, x_pm1: np.ndarray) -> np.ndarray:
        self.images += len(x_pm1)
        self.calls += self.target.calls(len(x_pm1))
        return self.target.raw_outputs(x_pm1)

    def scores(self, x_pm1: np.ndarray) -> np.ndarray:
        return outputs_to_scores(self.raw_outputs(x_pm1), self.target.card)


def load_target(path: str | Path, card_overrides: CardFields | None = None, *, task: str | None = None) -> Target:
    """Load an ONNX or TorchScript target and resolve its card; raise AuditInputError on any gap."""
    reading = read_card(path, card_overrides, task=task)
    return Target(path=reading.path, sha256=sha256_file(reading.path), card=reading.card(), runner=reading.runner)
