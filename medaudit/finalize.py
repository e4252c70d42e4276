"""Finalize: cell records in, the complete and frozen results record out.

Pure functions of what the executor stored: the epsilon choice under the perceptibility bound,
each surrogate's fitness (did it learn; do its own attacks break it), the gate (`criteria.judge`),
the spread over seeds, paired comparisons between rows, and the report's example images.
"""

from __future__ import annotations

import base64
import io
import math
import statistics
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from medaudit.data import grey_from_pm1
from medaudit.execute import auc_labels
from medaudit.metrics import bootstrap_paired_difference
from medaudit.results import (
    CellRecord,
    EpochRecord,
    EpsilonChoice,
    Example,
    IntervalRecord,
    PairedComparison,
    SeedSpread,
    SurrogateFitness,
    SurrogateResult,
    WhiteboxCheck,
)
from medaudit.scenario import FitnessSection, Perceptibility, Scenario

ArraysOf = Callable[[CellRecord], dict[str, np.ndarray]]  # a cell's per-image arrays: adversarial_scores, ...


def choose_epsilons(cells: Sequence[CellRecord], perceptibility: Perceptibility) -> tuple[EpsilonChoice, ...]:
    """Per attack: mean SSIM over attackers at each epsilon; every epsilon at or above the bound is
    admissible (criteria are judged at each); the largest admissible one is shown in examples."""
    bound = perceptibility.min_mean_ssim
    choices = []
    for attack in dict.fromkeys(c.attack_id for c in cells):
        mine = [c for c in cells if c.attack_id == attack]
        curve = tuple(
            (eps, float(np.mean([c.mean_ssim for c in mine if c.epsilon_pm1 == eps])))
            for eps in sorted({c.epsilon_pm1 for c in mine})
        )
        admissible = tuple(eps for eps, ssim in curve if ssim >= bound)
        binds = len(admissible) < len(curve)
        if not admissible:
            chosen = None
            reason = (
                f"no epsilon kept mean SSIM ≥ {bound:g} (SSIM {curve[0][1]:.3f} at the smallest, "
                f"{curve[0][0]:g}); extend `epsilons_pm1` downward"
            )
        else:
            chosen = max(admissible)
            ssim = dict(curve)[chosen]
            reason = (
                f"largest epsilon with mean SSIM ≥ {bound:g}: {chosen:g} (SSIM {ssim:.3f})"
                if binds
                else f"every epsilon in the grid kept mean SSIM ≥ {bound:g} (SSIM {ssim:.3f} at the largest, "
                f"{chosen:g}): the grid, not perceptibility, limited epsilon; extend `epsilons_pm1` upward "
                "to find where the bound binds"
            )
        choices.append(
            EpsilonChoice(
                attack_id=attack,
                curve=curve,
                bound=bound,
                admissible_epsilons_pm1=admissible,
                chosen_epsilon_pm1=chosen,
                bound_binds=binds,
                reason=reason,
            )
        )
    return tuple(choices)


def learned(test_auc: IntervalRecord, floor: float) -> bool:
    """Fitness criterion 1: the clean test AUC's lower bound is finite and reaches `floor`."""
    return math.isfinite(test_auc.low) and test_auc.low >= floor


def breaks(auc_whitebox: float, bound: float) -> bool:
    """Fitness criterion 2: the attack, run white-box on the surrogate, brings its own AUC to `bound` or below."""
    return auc_whitebox <= bound


def moves_siblings(sibling_relative_auc: float | None, bound: float) -> bool:
    """Fitness criterion 3: the attack's images bring the row's other seeds to `bound` of their clean AUC or
    below (None: the row has no other seed, so there is nothing to check)."""
    return sibling_relative_auc is None or sibling_relative_auc <= bound


def fitness(
    surrogate_id: str,
    test_auc: IntervalRecord,
    cells: Sequence[CellRecord],
    choices: Sequence[EpsilonChoice],
    section: FitnessSection,
) -> SurrogateFitness:
    """Fit = the clean test AUC's lower bound reaches the floor, and every attack run white-box on the
    surrogate at its chosen epsilon brings the surrogate's own AUC to the bound or below."""
    reasons = []
    if not learned(test_auc, section.min_surrogate_auc):
        reasons.append(
            f"clean test AUC {test_auc.point:.3f} (lower bound {test_auc.low:.3f}) below the floor "
            f"{section.min_surrogate_auc:g}: the surrogate did not learn the task"
        )
    checks = []
    for choice in choices:
        if choice.chosen_epsilon_pm1 is None:
            continue
        cell = next(
            (
                c
                for c in cells
                if c.surrogate_id == surrogate_id
                and c.attack_id == choice.attack_id
                and math.isclose(c.epsilon_pm1, choice.chosen_epsilon_pm1, abs_tol=1e-12)
            ),
            None,
        )
        if cell is None:
            continue
        broken = breaks(cell.surrogate_auc_whitebox, section.max_whitebox_auc)
        sibling = cell.sibling_relative_auc
        moves = moves_siblings(sibling, section.max_sibling_relative_auc)
        checks.append(
            WhiteboxCheck(
                attack_id=choice.attack_id,
                epsilon_pm1=cell.epsilon_pm1,
                auc_whitebox=cell.surrogate_auc_whitebox,
                bound=section.max_whitebox_auc,
                sibling_relative_auc=sibling,
                sibling_bound=section.max_sibling_relative_auc,
                passed=broken and moves,
            )
        )
        if not broken:
            reasons.append(
                f"{choice.attack_id} white-box at ε {cell.epsilon_pm1:g} leaves the surrogate's own AUC at "
                f"{cell.surrogate_auc_whitebox:.3f} > {section.max_whitebox_auc:g}: the attack does not "
                "break its own model"
            )
        if not moves:
            reasons.append(
                f"{choice.attack_id} at ε {cell.epsilon_pm1:g} leaves the row's other seeds at "
                f"{sibling:.3f} of their clean AUC > {section.max_sibling_relative_auc:g}: its perturbations "
                "do not transfer even to a copy of the surrogate trained with another seed"
            )
    return SurrogateFitness(
        fit=not reasons, test_auc_floor=section.min_surrogate_auc, whitebox=tuple(checks), reasons=tuple(reasons)
    )


def with_fitness(
    surrogates: Sequence[SurrogateResult],
    cells: Sequence[CellRecord],
    choices: Sequence[EpsilonChoice],
    section: FitnessSection,
) -> tuple[SurrogateResult, ...]:
    """Each surrogate with its fitness. An ensemble is also unfit when any of its members is: its own
    sibling-transfer check cannot be measured (its members are not independent copies of it), and averaging
    models whose perturbations do not transfer, or that did not learn, is no stronger evidence than they are."""
    own = {s.id: fitness(s.id, s.test_auc, cells, choices, section) for s in surrogates}
    out = []
    for s in surrogates:
        verdict = own[s.id]
        unfit_members = [m for m in s.member_ids if not own[m].fit]
        if unfit_members:
            verdict = verdict.model_copy(
                update={
                    "fit": False,
                    "reasons": verdict.reasons
                    + (
                        f"{len(unfit_members)} of its {len(s.member_ids)} members are unfit "
                        f"({', '.join(unfit_members)}): an ensemble is no stronger evidence than the models it averages",
                    ),
                }
            )
        out.append(s.model_copy(update={"fitness": verdict}))
    return tuple(out)


def seed_spread(cells: Sequence[CellRecord]) -> tuple[SeedSpread, ...]:
    """Per row, attack and epsilon: min / median / max relative AUC over the row's single surrogates (seeds;
    ensembles are attackers of their own, shown apart)."""
    groups: dict[tuple[str, str, float], list[CellRecord]] = {}
    for c in (c for c in cells if len(c.member_ids) == 1):
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
                most_harmful_surrogate_id=worst.surrogate_id,
            )
        )
    return tuple(out)


def most_harmful(cells: Sequence[CellRecord], row_id: str, attack_id: str, eps: float) -> CellRecord | None:
    mine = [c for c in cells if c.row_id == row_id and c.attack_id == attack_id and c.epsilon_pm1 == eps]
    return min(mine, key=lambda c: c.relative_auc.point) if mine else None


def comparisons(
    scenario: Scenario,
    cells: Sequence[CellRecord],
    choices: Sequence[EpsilonChoice],
    y: np.ndarray,
    clean_scores: np.ndarray,
    groups: np.ndarray | None,
    task: str,
    k: int,
    arrays_of: ArraysOf,
) -> tuple[PairedComparison, ...]:
    """Each scenario pair (A, B), per attack at its chosen epsilon: paired bootstrap of A - B on the same
    images, each row represented by its surrogate most harmful to the target."""
    out = []
    y_auc = auc_labels(y, task, k)
    for row_a, row_b in scenario.comparisons:
        for choice in choices:
            eps = choice.chosen_epsilon_pm1
            if eps is None:
                continue
            a, b = (most_harmful(cells, r, choice.attack_id, eps) for r in (row_a, row_b))
            if a is None or b is None:
                continue
            d = bootstrap_paired_difference(
                y_auc,
                clean_scores,
                arrays_of(a)["adversarial_scores"],
                clean_scores,
                arrays_of(b)["adversarial_scores"],
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


def _png(x_pm1: np.ndarray) -> str:
    arr = grey_from_pm1(np.asarray(x_pm1).transpose(1, 2, 0))
    im = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def examples(
    cells: Sequence[CellRecord],
    choices: Sequence[EpsilonChoice],
    *,
    labels: np.ndarray,
    clean_scores: np.ndarray,
    shown: np.ndarray,
    originals: np.ndarray,
    arrays_of: ArraysOf,
) -> tuple[Example, ...]:
    """Original, adversarial and amplified perturbation at each attack's chosen epsilon (first attacker)."""
    out = []
    for choice in choices:
        if choice.chosen_epsilon_pm1 is None:
            continue
        cell = next(c for c in cells if c.attack_id == choice.attack_id and c.epsilon_pm1 == choice.chosen_epsilon_pm1)
        arrays = arrays_of(cell)
        amplification = float(np.floor(0.5 / max(cell.max_abs_delta_pm1, 1e-6)))
        for j, index in enumerate(shown):
            original, adversarial = originals[j], arrays["example_adversarial"][j]
            label = labels[index]
            out.append(
                Example(
                    row_id=cell.row_id,
                    attack_id=cell.attack_id,
                    epsilon_pm1=cell.epsilon_pm1,
                    label=tuple(int(v) for v in label) if np.ndim(label) else int(label),
                    original_png=_png(original),
                    adversarial_png=_png(adversarial),
                    perturbation_png=_png(np.clip((adversarial - original) * amplification, -1, 1)),
                    amplification=amplification,
                    score_clean=float(np.ravel(clean_scores[index])[0]),
                    score_adversarial=float(np.ravel(arrays["adversarial_scores"][index])[0]),
                )
            )
    return tuple(out)


def learning_curve(record) -> tuple[EpochRecord, ...]:
    """A trained surrogate's per-epoch curve as result records."""
    return tuple(
        EpochRecord(epoch=e.epoch, train_loss=e.train_loss, val_auc=e.val_auc, learning_rate=e.learning_rate)
        for e in record.curve
    )
