"""Finalize, by hand: which epsilons are admissible, whether a surrogate is fit, the spread over seeds."""

from __future__ import annotations

import pytest

from medaudit.finalize import choose_epsilons, fitness, moves_siblings, seed_spread, with_fitness
from medaudit.results import CellRecord, IntervalRecord
from medaudit.scenario import FGSM, FitnessSection, Perceptibility
from tests.fixtures_results import make_surrogate


def iv(point: float, low: float | None = None, high: float | None = None) -> IntervalRecord:
    return IntervalRecord(
        point=point,
        low=point - 0.02 if low is None else low,
        high=point + 0.02 if high is None else high,
        confidence=0.95,
        resamples=200,
        degenerate=0,
    )


def cell(
    surrogate: str,
    eps: float,
    *,
    ssim: float = 0.95,
    whitebox: float = 0.1,
    relative: float = 0.8,
    sibling: float | None = None,
    row: str = "same-random-d2",
    attack: str = "fgsm",
) -> CellRecord:
    return CellRecord(
        id=f"{surrogate}/{attack}/eps{eps:g}",
        surrogate_id=surrogate,
        member_ids=(surrogate,),
        row_id=row,
        attack_id=attack,
        attack=FGSM(name="fgsm"),
        epsilon_pm1=eps,
        epsilon_grey_levels=eps * 127.5,
        auc_clean=iv(0.9),
        auc_adversarial=iv(0.9 * relative),
        auc_control=iv(0.89),
        relative_auc=iv(relative),
        relative_auc_control=iv(0.99),
        adversarial_specific_drop=iv(0.89 - 0.9 * relative),
        per_class_auc_clean=(0.9,),
        per_class_auc_adversarial=(0.9 * relative,),
        surrogate_auc_clean=iv(0.85),
        surrogate_auc_whitebox=whitebox,
        sibling_relative_auc=sibling,
        whitebox_flag=False,
        operating_point=None,
        mean_ssim=ssim,
        mean_ssim_control=ssim,
        max_abs_delta_pm1=eps,
        target_queries=10,
    )


def test_epsilon_choice_admits_every_epsilon_at_or_above_the_bound():
    # two surrogates; mean SSIM per epsilon: 0.01 -> 0.95, 0.02 -> (0.91 + 0.89)/2 = 0.90, 0.03 -> 0.85
    cells = [
        cell("a", 0.01, ssim=0.95),
        cell("b", 0.01, ssim=0.95),
        cell("a", 0.02, ssim=0.91),
        cell("b", 0.02, ssim=0.89),
        cell("a", 0.03, ssim=0.85),
        cell("b", 0.03, ssim=0.85),
    ]
    (choice,) = choose_epsilons(cells, Perceptibility(min_mean_ssim=0.9))
    assert choice.curve == ((0.01, 0.95), (0.02, pytest.approx(0.90)), (0.03, 0.85))
    assert choice.admissible_epsilons_pm1 == (0.01, 0.02)
    assert choice.chosen_epsilon_pm1 == 0.02 and choice.bound_binds
    assert choice.reason == "largest epsilon with mean SSIM ≥ 0.9: 0.02 (SSIM 0.900)"


def test_epsilon_choice_says_when_the_grid_not_the_bound_limited_epsilon():
    (choice,) = choose_epsilons(
        [cell("a", 0.01, ssim=0.99), cell("a", 0.02, ssim=0.97)], Perceptibility(min_mean_ssim=0.9)
    )
    assert choice.admissible_epsilons_pm1 == (0.01, 0.02) and not choice.bound_binds
    assert "the grid, not perceptibility, limited epsilon" in choice.reason


def test_epsilon_choice_with_nothing_admissible():
    (choice,) = choose_epsilons([cell("a", 0.05, ssim=0.7)], Perceptibility(min_mean_ssim=0.9))
    assert choice.chosen_epsilon_pm1 is None and choice.admissible_epsilons_pm1 == ()
    assert choice.reason.endswith("extend `epsilons_pm1` downward")


def test_fitness_needs_a_learned_surrogate_and_attacks_that_break_it():
    cells = [cell("a", 0.01, whitebox=0.3), cell("a", 0.02, whitebox=0.05)]
    choices = choose_epsilons(cells, Perceptibility(min_mean_ssim=0.9))  # chosen: 0.02
    section = FitnessSection(min_surrogate_auc=0.6, max_whitebox_auc=0.5)
    fit = fitness("a", iv(0.85, low=0.80), cells, choices, section)
    assert fit.fit and fit.reasons == ()
    assert [(c.epsilon_pm1, c.auc_whitebox, c.passed) for c in fit.whitebox] == [(0.02, 0.05, True)]

    at_chance = fitness("a", iv(0.52, low=0.45), cells, choices, section)
    assert not at_chance.fit
    assert at_chance.reasons == (
        "clean test AUC 0.520 (lower bound 0.450) below the floor 0.6: the surrogate did not learn the task",
    )
    no_transfer = [cell("a", 0.01), cell("a", 0.02, whitebox=0.0, sibling=0.99)]
    isolated = fitness(
        "a", iv(0.85, low=0.8), no_transfer, choose_epsilons(no_transfer, Perceptibility(min_mean_ssim=0.9)), section
    )
    assert not isolated.fit and isolated.whitebox[0].sibling_relative_auc == 0.99
    assert isolated.reasons == (
        "fgsm at ε 0.02 leaves the row's other seeds at 0.990 of their clean AUC > 0.97: its "
        "perturbations do not transfer even to a copy of the surrogate trained with another seed",
    )
    unbroken = [cell("a", 0.01, whitebox=0.3), cell("a", 0.02, whitebox=0.7)]
    weak = fitness(
        "a", iv(0.85, low=0.8), unbroken, choose_epsilons(unbroken, Perceptibility(min_mean_ssim=0.9)), section
    )
    assert not weak.fit and weak.reasons[0].startswith(
        "fgsm white-box at ε 0.02 leaves the surrogate's own AUC at 0.700"
    )


def test_an_ensemble_of_unfit_members_is_unfit_even_when_its_own_checks_pass():
    # members a and b break white-box; a's images also take its sibling to 0.8 of clean, b's leave a at 0.99
    cells = [
        cell("a", 0.02, whitebox=0.0, sibling=0.8),
        cell("b", 0.02, whitebox=0.0, sibling=0.99),
        cell("ens", 0.02, whitebox=0.0),  # an ensemble has no sibling measurement of its own
    ]
    choices = choose_epsilons(cells, Perceptibility(min_mean_ssim=0.9))
    section = FitnessSection(min_surrogate_auc=0.6, max_whitebox_auc=0.5)
    surrogates = [
        make_surrogate("same-random-d2", "a"),
        make_surrogate("same-random-d2", "b", seed=1),
        make_surrogate("same-random-d2", "ens", member_ids=("a", "b")),
    ]
    judged = {s.id: s.fitness for s in with_fitness(surrogates, cells, choices, section)}
    assert judged["a"].fit and not judged["b"].fit
    assert not judged["ens"].fit
    assert judged["ens"].reasons == (
        "1 of its 2 members are unfit (b): an ensemble is no stronger evidence than the models it averages",
    )
    assert all(c.passed for c in judged["ens"].whitebox)  # unfit through its member, not its own checks

    transferring = [cell("a", 0.02, whitebox=0.0, sibling=0.8), cell("b", 0.02, whitebox=0.0, sibling=0.85)]
    transferring.append(cell("ens", 0.02, whitebox=0.0))
    both_fit = with_fitness(surrogates, transferring, choices, section)
    assert [s.fitness.fit for s in both_fit] == [True, True, True]


def test_seed_spread_and_the_most_harmful_seed():
    cells = [cell("s0", 0.02, relative=0.9), cell("s1", 0.02, relative=0.6), cell("s2", 0.02, relative=0.75)]
    (spread,) = seed_spread(cells)
    assert (spread.n_surrogates, spread.relative_auc_min, spread.relative_auc_median, spread.relative_auc_max) == (
        3,
        0.6,
        0.75,
        0.9,
    )
    assert spread.most_harmful_surrogate_id == "s1"


def test_moves_siblings_is_criterion_3_at_its_bound():
    assert moves_siblings(0.96, 0.97) and moves_siblings(0.97, 0.97)  # at the bound: it moved them enough
    assert not moves_siblings(0.971, 0.97)
    assert moves_siblings(None, 0.97)  # no sibling: nothing to check
