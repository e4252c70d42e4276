"""Finalize: what the executor stored in, the judged parts of the results record out.

Pure functions of the cell records and their per-image scores: which epsilons the perceptibility bound admits,
each attacker's fitness (did it learn; do its perturbations move a model of its row that did not make them
beyond that model's own control), each attacker's breaking epsilon per criterion, and the surrogates' records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from medaudit.attackers import SurrogateRecord, family
from medaudit.core import auc
from medaudit.engine import Plan, atlas_ids
from medaudit.records import (
    AttackerFitness,
    BoundCheck,
    CellRecord,
    EpsilonChoice,
    EpsilonSearch,
    IntervalRecord,
    SurrogateResult,
)
from medaudit.scenario import FitnessSection, Scenario

_EPS_DIGITS = 9  # epsilons are matched after rounding (grid values, not computed ones)
ORDER_TOLERANCE = 0.01  # white-box AUC above another attacker's on the same images by more than this: not a bound


@dataclass(frozen=True)
class CellScores:
    """One cell's per-image target scores, on the test images it measured."""

    image_indices: np.ndarray  # (M,) into the test set
    adversarial: np.ndarray  # (M,) or (M, K)
    control: np.ndarray


ScoresOf = Callable[[CellRecord], CellScores]


def eps_key(e: float) -> float:
    return round(e, _EPS_DIGITS)


def order_check(cells: Sequence[CellRecord], y_auc: np.ndarray, scores_of: ScoresOf) -> BoundCheck | None:
    """Carlini et al. 2019's ordering: an attacker with the weights does at least as much harm as one with the
    scores or with surrogates. Every query and transfer cell is set against the white-box cell at the smallest
    white-box epsilon at or above its own (a near-optimal attack's AUC does not rise with epsilon), on the test
    images both measured; the largest excess is the check's (None: no white-box cell, or no cell to compare)."""
    whitebox = [c for c in cells if c.tier == "whitebox"]
    worst = None
    for other in cells:
        above = [w for w in whitebox if eps_key(w.epsilon_pm1) >= eps_key(other.epsilon_pm1)]
        if other.tier == "whitebox" or not above:
            continue
        at = min(eps_key(w.epsilon_pm1) for w in above)
        mine, theirs = scores_of(other), None
        for w in (w for w in above if eps_key(w.epsilon_pm1) == at):
            ours = scores_of(w)
            common, i_w, i_o = np.intersect1d(ours.image_indices, mine.image_indices, return_indices=True)
            labels = y_auc[common]
            if len(np.unique(labels if labels.ndim == 1 else labels.argmax(1))) < 2:
                continue
            a_w, a_o = auc(labels, ours.adversarial[i_w]), auc(labels, mine.adversarial[i_o])
            if theirs is None or a_w < theirs[0]:
                theirs = (a_w, a_o, w, len(common))
        if theirs is None:
            continue
        a_w, a_o, w, n = theirs
        if worst is None or a_w - a_o > worst.auc_bound - worst.auc_reference:
            worst = BoundCheck(
                check="order",
                passed=bool(a_w <= a_o + ORDER_TOLERANCE),
                epsilon_pm1=w.epsilon_pm1,
                images=n,
                auc_bound=a_w,
                auc_reference=a_o,
                tolerance=ORDER_TOLERANCE,
                against=f"{other.tier} attacker {other.attacker_id} ({other.attack_id}) at ε {other.epsilon_pm1:g}",
            )
    return worst


def choose_epsilons(
    cells: Sequence[CellRecord], scenario: Scenario, searches: dict[str, EpsilonSearch]
) -> tuple[EpsilonChoice, ...]:
    """Per attack: mean SSIM over its cells at each epsilon measured; every epsilon at or above the bound is
    admissible (criteria are judged at each); the largest admissible one is shown in examples and plots."""
    p = scenario.perceptibility
    bound = p.min_mean_ssim if p else None
    choices = []
    for attack in scenario.attacks:
        mine = [c for c in cells if c.attack_id == attack.id]
        if not mine:
            continue
        curve = tuple(
            (eps, float(np.mean([c.mean_ssim for c in mine if eps_key(c.epsilon_pm1) == eps])))
            for eps in sorted({eps_key(c.epsilon_pm1) for c in mine})
        )
        admissible = tuple(eps for eps, ssim in curve if bound is None or ssim >= bound)
        search = searches.get(attack.id)
        binds = len(admissible) < len(curve)
        chosen = max(admissible) if admissible else None
        if bound is None:
            reason = "no perceptibility budget: every epsilon measured is admissible"
        elif not admissible:
            reason = (
                f"no epsilon kept mean SSIM ≥ {bound:g} (SSIM {curve[0][1]:.3f} at the smallest, {curve[0][0]:g}); "
                "extend `epsilons_pm1` downward"
            )
        elif binds:
            reason = f"largest epsilon with mean SSIM ≥ {bound:g}: {chosen:g} (SSIM {dict(curve)[chosen]:.3f})"
        else:
            reason = (
                f"every epsilon measured kept mean SSIM ≥ {bound:g} (SSIM {dict(curve)[chosen]:.3f} at the largest, "
                f"{chosen:g}): the grid, not perceptibility, limited epsilon"
            )
        if search is not None and not search.monotone:
            reason += "; SSIM rose somewhere with epsilon during the search, so each epsilon was checked on its cells"
        choices.append(
            EpsilonChoice(
                attack_id=attack.id,
                tier=attack.tier,
                curve=curve,
                bound=bound,
                near_invisible_ssim=p.near_invisible_ssim if p else None,
                admissible_epsilons_pm1=admissible,
                chosen_epsilon_pm1=chosen,
                bound_epsilon_pm1=search.bound_epsilon_pm1 if search else (chosen if binds else None),
                near_invisible_epsilon_pm1=search.near_invisible_epsilon_pm1 if search else None,
                bound_binds=binds,
                search=search,
                reason=reason,
            )
        )
    return tuple(choices)


# ---------------------------------------------------------------- fitness
def learned(test_auc: IntervalRecord, floor: float) -> bool:
    """Fitness criterion 1: the clean test AUC's lower bound is finite and reaches `floor`."""
    return math.isfinite(test_auc.low) and test_auc.low >= floor


def transfers(cell: CellRecord, floor: float) -> bool | None:
    """Fitness criterion 2: at this cell's epsilon the attacker's images lower the AUC of its row's models outside it
    by more than the same perturbation shuffled does (lower bound of control - adversarial above `floor`);
    None when its row has no model outside it."""
    if cell.transfer is None:
        return None
    return cell.transfer.drop_beyond_control.finite and cell.transfer.drop_beyond_control.low > floor


def attacker_fitness(
    attack_id: str, cells: Sequence[CellRecord], choice: EpsilonChoice | None, section: FitnessSection
) -> AttackerFitness:
    """One attacker with one attack: fit when it learned and, at the attack's largest admissible epsilon, its
    perturbations move a model of its row that did not make them beyond that model's own control."""
    eps = choice.chosen_epsilon_pm1 if choice else None
    cell = next((c for c in cells if eps is not None and eps_key(c.epsilon_pm1) == eps_key(eps)), None)
    test_auc = cells[0].surrogate_auc_clean
    reasons = []
    if not learned(test_auc, section.min_surrogate_auc):
        reasons.append(
            f"clean test AUC {test_auc.point:.3f} (lower bound {test_auc.low:.3f}) below the floor "
            f"{section.min_surrogate_auc:g}: it did not learn the task"
        )
    if cell is None:
        reasons.append(f"{attack_id}: no admissible epsilon to check its transfer at")
    elif transfers(cell, section.min_transfer_drop) is None:
        reasons.append("its row has no model it is not made of, so its transfer cannot be checked")
    elif not transfers(cell, section.min_transfer_drop):
        d = cell.transfer.drop_beyond_control
        reasons.append(
            f"{attack_id} at ε {cell.epsilon_pm1:g} lowers the AUC of its row's other models by {d.point:+.3f} "
            f"beyond the shuffled control (lower bound {d.low:+.3f}, needs > {section.min_transfer_drop:g}): "
            "its perturbations do not transfer"
        )
    return AttackerFitness(
        attack_id=attack_id,
        fit=not reasons,
        epsilon_pm1=cell.epsilon_pm1 if cell else None,
        test_auc=test_auc,
        test_auc_floor=section.min_surrogate_auc,
        transfer=cell.transfer if cell else None,
        transfer_floor=section.min_transfer_drop,
        whitebox_auc=cell.surrogate_auc_whitebox if cell else None,
        reasons=tuple(reasons),
    )


def surrogate_results(
    plan: Plan,
    trained: dict[str, SurrogateRecord],
    cells: Sequence[CellRecord],
    choices: Sequence[EpsilonChoice],
    section: FitnessSection,
) -> tuple[SurrogateResult, ...]:
    """One record per trained surrogate (attackers and probes), then per ensemble, each attacker with its fitness
    per attack."""
    by_attacker: dict[str, list[CellRecord]] = {}
    for c in cells:
        by_attacker.setdefault(c.attacker_id, []).append(c)
    choice = {c.attack_id: c for c in choices}

    def fitness(attacker_id: str) -> tuple[AttackerFitness, ...]:
        mine = by_attacker.get(attacker_id, [])
        attacks = dict.fromkeys(c.attack_id for c in mine)
        return tuple(
            attacker_fitness(a, [c for c in mine if c.attack_id == a], choice.get(a), section) for a in attacks
        )

    out = []
    for job in plan.surrogates:
        r = trained[job.id]
        own = by_attacker.get(job.id)
        out.append(
            SurrogateResult(
                id=job.id,
                row_id=job.row_id,
                arch=r.arch,
                family=family(r.arch),
                init=r.init,
                split=r.split,
                seed=r.seed,
                member_ids=(),
                role=job.role,
                n_train=r.n_train,
                n_val=r.n_val,
                val_auc=r.val_auc,
                test_auc=own[0].surrogate_auc_clean if own else None,
                epochs_run=r.epochs_run,
                best_epoch=r.best_epoch,
                stop_reason=r.stop_reason,
                learning_curve=r.curve,
                train_seconds=r.train_seconds,
                from_cache=r.from_cache,
                trained_by=r.trained_by,
                atlas=atlas_ids(job.row),
                fitness=fitness(job.id),
            )
        )
    by_id = {s.id: s for s in out}
    for job in plan.cells:
        if len(job.member_ids) < 2 or job.attacker_id in by_id:
            continue
        members = [by_id[m] for m in job.member_ids]
        by_id[job.attacker_id] = SurrogateResult(
            id=job.attacker_id,
            row_id=job.row_id,
            arch="+".join(dict.fromkeys(m.arch for m in members)),
            family="ensemble",
            init="+".join(dict.fromkeys(m.init for m in members)),
            split="+".join(dict.fromkeys(m.split for m in members)),
            seed=-1,
            member_ids=job.member_ids,
            role="attacker",
            n_train=sum(m.n_train for m in members),
            n_val=members[0].n_val,
            val_auc=float(np.mean([m.val_auc for m in members])),
            test_auc=by_attacker[job.attacker_id][0].surrogate_auc_clean,
            epochs_run=0,
            best_epoch=0,
            stop_reason="ensemble of trained members (logits averaged)",
            learning_curve=(),
            train_seconds=sum(m.train_seconds for m in members),
            from_cache=all(m.from_cache for m in members),
            trained_by=", ".join(dict.fromkeys(m.trained_by for m in members)),
            atlas=tuple(dict.fromkeys(a for m in members for a in m.atlas)),
            fitness=fitness(job.attacker_id),
        )
        out.append(by_id[job.attacker_id])
    return tuple(out)
