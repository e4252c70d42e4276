"""The epsilon search by hand: where the bound binds, the grid around it, and a search that met a rise."""

from __future__ import annotations

import pytest

from medaudit.attacks import APGD, FGSM, PGD, Square
from medaudit.engine.budget_search import RELATIVE_PRECISION, grid, largest_within, monotone
from medaudit.records.measurements import SearchStep


def quadratic(calls: list[float]):
    """SSIM-like: 1 at 0, falling smoothly; meets 0.8 at 0.094495 and 0.98 at 0.008422 (roots of 3e^2 - 2.4e + c)."""

    def ssim_at(eps: float) -> float:
        calls.append(eps)
        return 1 - 2.4 * eps + 3 * eps * eps

    return ssim_at


def test_the_bound_is_found_within_its_precision_in_a_few_attacks():
    calls: list[float] = []
    bound = largest_within(quadratic(calls), 0.8)
    assert 0.094495 * (1 - RELATIVE_PRECISION) <= bound <= 0.094495  # the largest epsilon that keeps the bound
    assert calls[:2] == [0.05, 0.1] and len(calls) <= 6  # a bracket, then interpolation
    invisible = largest_within(quadratic(calls := []), 0.98, bound)
    assert 0.008422 * (1 - RELATIVE_PRECISION) <= invisible <= 0.008422 and len(calls) <= 6


def test_a_bound_never_met_below_the_ceiling_is_none_and_one_met_below_every_try_is_the_smallest():
    assert largest_within(lambda eps: 0.99, 0.8, ceiling=0.1) is None  # e.g. PGD's reach ends before the bound
    assert largest_within(lambda eps: 0.5, 0.8) > 0  # nothing admissible: the cells will say so


def test_the_grid_is_the_attacks_fractions_of_the_bound_and_never_past_its_reach():
    assert grid(0.08, FGSM.auto_fractions, 1.0) == (0.005, 0.01, 0.02, 0.04, 0.076, 0.12)  # just inside the bound
    assert grid(0.08, APGD.auto_fractions, 1.0) == (0.000313, 0.00125, 0.005, 0.02, 0.076, 0.12)  # 3 digits
    assert grid(0.08, Square.auto_fractions, 1.0)[:2] == (0.00125, 0.005)
    # the bound never bound within PGD's reach (10 steps of 0.01): fractions of the reach, none past it
    assert grid(None, PGD.auto_fractions, 0.1) == (0.00625, 0.0125, 0.025, 0.05, 0.095, 0.1)
    assert PGD(name="pgd", iterations=10, step_pm1=0.01).reach_pm1 == pytest.approx(0.1)


def test_an_8_bit_grid_is_whole_grey_levels_from_one_and_never_past_the_reach():
    grey = 2 / 255  # one grey level in [-1, 1] units
    # APGD's fractions of 0.08 are 0.04, 0.16, 0.64, 2.55, 9.69 and 15.3 grey levels: the first three round to one
    assert grid(0.08, APGD.auto_fractions, 1.0, grey) == tuple(k * grey for k in (1, 3, 10, 15))
    # PGD's reach 0.1 is 12.75 grey levels: 1.5 x the reach (12.75) is capped at 12 whole levels, not rounded to 13
    assert grid(None, PGD.auto_fractions, 0.1, grey) == tuple(k * grey for k in (1, 2, 3, 6, 12))


def test_a_rise_in_ssim_is_recorded():
    rises = (SearchStep(epsilon_pm1=0.05, mean_ssim=0.9), SearchStep(epsilon_pm1=0.1, mean_ssim=0.95))
    assert not monotone(rises)
    assert monotone((SearchStep(epsilon_pm1=0.1, mean_ssim=0.8), SearchStep(epsilon_pm1=0.05, mean_ssim=0.9)))
