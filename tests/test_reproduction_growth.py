"""The data-size experiment under the one rule (`reproduction.growth`), on score arrays whose paired bootstrap is
known in advance: a perfectly separating score keeps AUC 1 in every resample holding both classes, its reverse AUC 0,
so a target left alone keeps relative AUC 1 and a target the attack inverts falls to 0 in every resample."""

from __future__ import annotations

import numpy as np
import pytest

from reproduction import growth
from reproduction.growth import Pair, SizePoint

Y = np.array([0, 0, 0, 1, 1, 1])
SEPARATING = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])  # AUC 1
INVERTED = SEPARATING[::-1].copy()  # AUC 0
UNMOVED = Pair(SEPARATING, SEPARATING, SEPARATING)  # relative AUC 1, drop 0: does not beat its control
BROKEN = Pair(SEPARATING, INVERTED, SEPARATING)  # relative AUC 0, drop 1: beats its control
# 20 copies of six images: one negative scored 0.8 outranks two of the three positives, AUC 7/9 on the whole set, and
# with 120 images nearly every resample holds both it and the positives it outranks, so the drop beyond control
# (1 - AUC) stays above 0 across the resamples
TILES = 20
Y20 = np.tile(Y, TILES)
PARTLY = np.tile(np.array([0.1, 0.2, 0.8, 0.3, 0.7, 0.9]), TILES)  # AUC 7/9: relative 0.78


def tiled(pair: Pair) -> Pair:
    return Pair(*(np.tile(x, TILES) for x in (pair.clean, pair.adversarial, pair.control)))


def size(n: int, pair: Pair, pairs: int = 9) -> SizePoint:
    return SizePoint(n, (pair,) * pairs, surrogate_clean_auc=(1.0, 1.0, 1.0), epochs=(20,) * 6)


def test_the_largest_epsilon_inside_the_ssim_budget_for_every_surrogate():
    ssim = {0.02: [0.97, 0.95], 0.04: [0.86, 0.81], 0.06: [0.83, 0.79], 0.08: [0.70, 0.72]}
    assert growth.budget_epsilon(ssim) == 0.04  # at 0.06 one surrogate's images fall below 0.8
    assert growth.budget_epsilon({0.02: [0.79]}) is None


def test_a_larger_size_that_breaks_the_targets_grows_transfer_under_holm():
    """n 600 and n 1200 invert every target, n 300 leaves them alone: d = 0 - 1 = -1 in every resample, so both
    comparisons support at Holm's first step (97.5 %), and the smaller size's silence does not set them aside."""
    a = growth.judge(Y, None, [size(1200, BROKEN), size(300, UNMOVED), size(600, BROKEN)], eps=0.04)
    assert a.outcome == "holds"
    assert [j.label for j in a.judged] == ["n 600 − n 300", "n 1,200 − n 300"]
    assert [(j.interval.low, j.interval.high) for j in a.judged] == [(-1.0, -1.0), (-1.0, -1.0)]
    assert [round(j.interval.confidence, 4) for j in a.judged] == [0.975, 0.975]
    assert all(j.arms[0].transfers and not j.arms[1].transfers for j in a.judged)
    assert growth.reading(a, [size(300, UNMOVED), size(1200, BROKEN)], 0.04) == (
        "Transfer grows with data from 300 to 1,200 images per side at ε 0.04: relative AUC falls below the smallest "
        "size's at n 600 − n 300, n 1,200 − n 300."
    )
    every = [size(300, UNMOVED), size(600, BROKEN), size(1200, BROKEN)]
    assert growth.reading(a, every, 0.04).endswith("falls below the smallest size's at every larger size.")


def test_the_rule_is_symmetric_transfer_that_shrinks_with_data_does_not_hold():
    control_falls = Pair(SEPARATING, SEPARATING, INVERTED)  # adversarial AUC 1, control 0: drop -1, no transfer
    assert growth.judge(Y, None, [size(300, BROKEN), size(600, control_falls)], eps=0.04).outcome == (
        "no transfer to compare"
    )
    shrinks = Pair(np.tile(SEPARATING, TILES), PARTLY, np.tile(SEPARATING, TILES))  # relative 7/9 at n 600, 0 at 300
    b = growth.judge(Y20, None, [size(300, tiled(BROKEN)), size(600, shrinks)], eps=0.04)
    assert b.judged[0].interval.point == pytest.approx(7 / 9)
    assert b.outcome == "does not hold" and b.judged[0].decision == "contradicts"


def test_a_size_with_fewer_than_three_seed_pairs_is_not_testable():
    a = growth.judge(Y, None, [size(300, UNMOVED), size(600, BROKEN, pairs=1)], eps=0.04)
    assert a.outcome == "not testable"
    assert a.reasons == ("fewer than 3 seed pairs (n 600: 1 pairs)",)


@pytest.mark.parametrize("groups", [None, np.repeat(np.arange(3 * TILES), 2)], ids=["images", "patients"])
def test_sizes_alike_cannot_be_told_apart_and_the_sentence_says_what_the_curve_supports(groups):
    alike = Pair(np.tile(SEPARATING, TILES), PARTLY, np.tile(SEPARATING, TILES))
    a = growth.judge(Y20, groups, [size(300, alike), size(600, alike)], eps=0.04)
    assert a.judged[0].arms[0].drop.point == pytest.approx(2 / 9) and a.judged[0].arms[0].transfers
    # the same resamples on both sizes: d is 0 in every one, on neither side of 0
    assert (a.judged[0].interval.low, a.judged[0].interval.high) == (0.0, 0.0)
    assert a.outcome == "cannot be told apart"
    assert growth.reading(a, [size(300, alike), size(600, alike)], 0.04) == (
        "The curve supports only that any change of transfer from 300 to 600 images per side at ε 0.04 is smaller "
        "than these test images resolve (widest interval 0.000 relative AUC)."
    )
