"""The record's supporting evidence, built from the cells and their per-image scores: the spread over seeds, paired
comparisons between rows, the example images, and the anomalies a reviewer must see before submission.

Examples are honest: each shows a distinct test image whose decision the attack flipped across the clinical
threshold in the harmful direction (a positive pushed negative is a missed case, a negative pushed positive a
false alarm), taken from the judged cells, with its scores and its perturbation magnified.
"""

from __future__ import annotations

import base64
import io
import statistics
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from medaudit.core import bootstrap_paired_difference, grey_from_pm1
from medaudit.records import (
    Anomaly,
    CellRecord,
    EpsilonChoice,
    Example,
    GateRule,
    IntervalRecord,
    PairedComparison,
    SeedSpread,
)
from medaudit.scenario import Scenario

MAX_EXAMPLES = 6  # example images in the report, each a different test image
AMPLIFIED_RANGE = 0.5  # a perturbation is magnified until its largest change spans this much of [-1, 1]


def seed_spread(cells: Sequence[CellRecord]) -> tuple[SeedSpread, ...]:
    """Per row, attack and epsilon: min / median / max relative AUC over the row's single surrogates (seeds;
    ensembles are attackers of their own, shown apart)."""
    groups: dict[tuple[str, str, float], list[CellRecord]] = {}
    for c in (c for c in cells if c.tier == "transfer" and len(c.member_ids) == 1):
        groups.setdefault((c.row_id, c.attack_id, c.epsilon_pm1), []).append(c)
    out = []
    for (row_id, attack_id, eps), group in groups.items():
        values = [c.relative_auc.point for c in group]
        worst = min(group, key=lambda c: c.relative_auc.point)
        out.append(
            SeedSpread(
                row_id=row_id,
                attack_id=attack_id,
                epsilon_pm1=eps,
                n_surrogates=len(group),
                relative_auc_min=min(values),
                relative_auc_median=float(statistics.median(values)),
                relative_auc_max=max(values),
                most_harmful_surrogate_id=worst.attacker_id,
            )
        )
    return tuple(out)


def comparisons(
    scenario: Scenario,
    cells: Sequence[CellRecord],
    choices: Sequence[EpsilonChoice],
    y_auc: np.ndarray,
    clean_scores: np.ndarray,
    groups: np.ndarray | None,
    adversarial_of: Callable[[CellRecord], np.ndarray],
) -> tuple[PairedComparison, ...]:
    """Each scenario pair (A, B), per attack at its largest admissible epsilon: paired bootstrap of A - B on the
    same images, each row represented by its surrogate most harmful to the target."""
    out = []
    for row_a, row_b in scenario.comparisons:
        for choice in choices:
            eps = choice.chosen_epsilon_pm1
            if eps is None:
                continue
            a, b = (_most_harmful(cells, r, choice.attack_id, eps) for r in (row_a, row_b))
            if a is None or b is None:
                continue
            d = bootstrap_paired_difference(
                y_auc,
                clean_scores,
                adversarial_of(a),
                clean_scores,
                adversarial_of(b),
                resamples=scenario.bootstrap.resamples,
                confidence=scenario.bootstrap.confidence,
                seed=scenario.seed,
                groups=groups,
            )
            out.append(
                PairedComparison(
                    row_a=row_a,
                    row_b=row_b,
                    attack_id=choice.attack_id,
                    epsilon_pm1=eps,
                    difference_auc_adversarial=IntervalRecord.of(d.auc_adversarial),
                    difference_relative_auc=IntervalRecord.of(d.relative_auc),
                )
            )
    return tuple(out)


def _most_harmful(cells: Sequence[CellRecord], row_id: str, attack_id: str, eps: float) -> CellRecord | None:
    mine = [c for c in cells if c.row_id == row_id and c.attack_id == attack_id and abs(c.epsilon_pm1 - eps) < 1e-12]
    return min(mine, key=lambda c: c.relative_auc.point) if mine else None


def png(x_pm1: np.ndarray) -> str:
    """A (C, H, W) image in [-1, 1] as a base64 8-bit PNG."""
    arr = grey_from_pm1(np.asarray(x_pm1).transpose(1, 2, 0))
    im = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def examples(
    rules: Sequence[GateRule],
    cells: Sequence[CellRecord],
    *,
    labels: np.ndarray,
    originals: np.ndarray,
    clean_scores: np.ndarray,
    flips_of: Callable[[CellRecord], list[tuple[int, np.ndarray, float]]],
) -> tuple[Example, ...]:
    """Up to MAX_EXAMPLES harmful flips, each a different test image, from the judged cells, worst rule first.
    `flips_of(cell)` gives the cell's flips: (test image index, adversarial image, adversarial score)."""
    by_key = {(c.attacker_id, c.attack_id, round(c.epsilon_pm1, 9)): c for c in cells}
    judged = [r for r in rules if r.attacker_id is not None and r.epsilon_pm1 is not None]
    order = sorted(judged, key=lambda r: {"FAIL": 0, "ERROR": 1, "INCONCLUSIVE": 2, "PASS": 3}[r.status])
    out, seen = [], set()
    for rule in order:
        cell = by_key.get((rule.attacker_id, rule.attack_id, round(rule.epsilon_pm1, 9)))
        if cell is None or cell.operating_point is None:
            continue
        for index, x_adv, score in flips_of(cell):
            if index in seen or len(out) >= MAX_EXAMPLES:
                continue
            seen.add(index)
            original = originals[index]
            delta = x_adv - original
            amplification = float(np.floor(AMPLIFIED_RANGE / max(float(np.abs(delta).max()), 1e-6)))
            label = int(labels[index])
            out.append(
                Example(
                    row_id=cell.row_id,
                    attacker_id=cell.attacker_id,
                    attack_id=cell.attack_id,
                    epsilon_pm1=cell.epsilon_pm1,
                    image_index=int(index),
                    label=label,
                    direction="positive pushed negative" if label == 1 else "negative pushed positive",
                    original_png=png(original),
                    adversarial_png=png(x_adv),
                    perturbation_png=png(np.clip(delta * amplification, -1, 1)),
                    amplification=amplification,
                    score_clean=float(clean_scores[index]),
                    score_adversarial=float(score),
                    threshold=cell.operating_point.threshold,
                )
            )
    return tuple(out)


def anomalies(
    masking: str | None, unverified: str | None, clean_auc: float, task: str, unavailable: Sequence[str]
) -> tuple[Anomaly, ...]:
    """What needs a human look before submission: masked gradients, a white-box bound that failed its checks, a
    target below chance, a tier that could not run."""
    out = []
    if masking:
        out.append(Anomaly(id="A-MASKING", text=f"possible gradient masking: {masking}"))
    if unverified:
        out.append(Anomaly(id="A-UNVERIFIED-BOUND", text=f"the white-box result is {unverified}"))
    if task == "binary" and clean_auc < 0.5:
        out.append(
            Anomaly(
                id="A-BELOW-CHANCE",
                text=f"target clean AUC {clean_auc:.3f} < 0.5: check the card's positive_index and the labels",
            )
        )
    for reason in unavailable:
        out.append(Anomaly(id="A-TIER-UNAVAILABLE", text=reason))
    return tuple(out)
