"""Each arm's measured ε* and the ratio of two arms' ε* (`reproduction.arm_epsilon`), on score arrays whose every
resample is known in advance: a perfectly separating score keeps AUC 1 in every resample that holds both classes,
and its reverse AUC 0, so ε* is the same grid point on the whole sample and on every resample."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medaudit.core.metrics import Interval
from reproduction.arm_epsilon import RELATIVE_AUC, ArmEpsilon, arm_epsilon, ratio
from reproduction.assess import Arm, Judged
from reproduction.document import arm_notes

Y = np.array([0] * 20 + [1] * 20)
CLEAN = Y.astype(float)  # AUC 1
KEPT = CLEAN.copy()  # relative AUC 1: holds
FLIPPED = 1.0 - CLEAN  # AUC 0: relative AUC 0 breaks
GRID = [0.01, 0.02, 0.03]


def arm(*adversarial: np.ndarray, grid=GRID) -> ArmEpsilon:
    return arm_epsilon(Y, None, CLEAN, list(grid), list(adversarial), [CLEAN] * len(adversarial))


def test_epsilon_star_is_the_first_grid_point_where_relative_auc_falls_below_the_criterion():
    a = arm(KEPT, FLIPPED, FLIPPED)
    assert a.point == 0.02 and a.text() == "0.02"
    # every resample holds both classes (20 of 40 are positive), so every resample breaks at 0.02 as well
    assert np.all(a.resampled == 0.02)


def test_an_arm_that_holds_on_its_whole_grid_has_epsilon_star_beyond_it():
    a = arm(KEPT, KEPT, KEPT)
    assert a.point is None and a.text() == ">0.03" and np.all(np.isinf(a.resampled))


def test_a_relative_auc_at_the_criterion_holds_and_one_below_breaks():
    # one negative and five positives: one positive scored below the negative leaves 4 of 5 pairs, AUC 0.8
    y = np.array([0, 1, 1, 1, 1, 1])
    clean = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    at_criterion = np.array([0.5, 0.4, 0.7, 0.8, 0.9, 1.0])
    below = np.array([0.5, 0.4, 0.3, 0.8, 0.9, 1.0])  # 3 of 5: 0.6
    a = arm_epsilon(y, None, clean, [0.01, 0.02], [at_criterion, below], [clean, clean])
    assert RELATIVE_AUC == 0.8 and a.point == 0.02


def test_the_ratio_of_two_measured_epsilon_stars_and_its_interval():
    r = ratio(arm(FLIPPED, FLIPPED, FLIPPED), arm(KEPT, FLIPPED, FLIPPED))
    assert (r.point, r.bound, r.low, r.high) == (0.5, "", 0.5, 0.5)
    assert r.text() == "÷0.5 (0.5–0.5)"


def test_an_arm_that_holds_on_its_grid_bounds_the_ratio_at_its_largest_epsilon():
    breaks, holds = arm(KEPT, FLIPPED, FLIPPED), arm(KEPT, KEPT, KEPT)
    less = ratio(breaks, holds)  # 0.02 / (> 0.03): less than 0.67
    assert less.bound == "<" and less.point == pytest.approx(2 / 3) and less.text() == "÷<0.67 (0.67–0.67)"
    more = ratio(holds, breaks)
    assert more.bound == ">" and more.point == pytest.approx(1.5) and more.text() == "÷>1.5 (1.5–1.5)"


def test_two_arms_that_hold_on_their_grids_give_no_ratio():
    r = ratio(arm(KEPT, KEPT, KEPT), arm(KEPT, KEPT))
    assert r.point is None and r.text() == "" and math.isnan(r.low)


def test_the_table_gives_each_arms_epsilon_star_and_their_ratio():
    drop = Interval(0.1, 0.05, 0.15, 0.95, 1000, 0)
    first = Arm("a", drop, whitebox_auc=0.0, epsilon_star=arm(FLIPPED, FLIPPED, FLIPPED))
    second = Arm("b", drop, whitebox_auc=0.25, epsilon_star=arm(KEPT, KEPT, KEPT))
    j = Judged("c", "judged", drop, "supports", (), (first, second))
    assert arm_notes(j) == " wb 0.00/0.25 ε* 0.01/>0.03 ÷<0.33 (0.33–0.33)"
    alone = Judged("c", "judged", drop, "supports", (), (Arm("a", drop, whitebox_auc=0.0),))
    assert arm_notes(alone) == " wb 0.00"
