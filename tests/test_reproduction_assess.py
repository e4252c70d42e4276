"""The reproduction's one outcome rule (`reproduction.assess`), on hand-worked intervals and on small score arrays whose
paired bootstrap is known in advance (a perfectly separating score keeps AUC 1 in every resample holding both
classes), so every outcome is reached and the rule's symmetry is checked: holds / does not hold / mixed / cannot be
told apart / no transfer to compare / not testable.
"""

from __future__ import annotations

import numpy as np
import pytest

from medaudit.core.metrics import Interval
from reproduction import assess
from reproduction.assess import Arm, Claim, Comparison, Scored

BELOW_0 = Claim("below", 0.0, measure="d")
ABOVE_0 = Claim("above", 0.0, measure="d")
BOUND_BELOW = Claim("below", 0.01, measure="clean - control")


def interval(low: float, high: float, confidence: float = 0.95) -> Interval:
    return Interval(point=(low + high) / 2, low=low, high=high, confidence=confidence, resamples=1000, degenerate=0)


def fixed(low: float, high: float):
    """An interval that does not depend on the confidence asked for."""
    return lambda confidence: interval(low, high, confidence)


def by_confidence(table: dict[float, tuple[float, float]]):
    """An interval per confidence level (rounded to 4 decimals), as a bootstrap would widen it."""
    return lambda confidence: interval(*table[round(confidence, 4)], confidence)


MOVES = Arm("row a FGSM ε 0.02", interval(0.01, 0.05))  # beats its control: drop's lower bound above 0
STILL = Arm("row b FGSM ε 0.02", interval(-0.01, 0.02))  # does not: the drop's interval reaches 0


def judged(low: float, high: float, label: str = "c") -> Comparison:
    return Comparison(label, fixed(low, high), arms=(MOVES, MOVES))


@pytest.mark.parametrize(
    "low, high, claim, expected",
    [
        (-0.3, -0.1, BELOW_0, "supports"),
        (0.1, 0.3, BELOW_0, "contradicts"),
        (-0.1, 0.1, BELOW_0, "undecided"),
        (0.011, 0.02, BOUND_BELOW, "contradicts"),
        (0.0, 0.02, BOUND_BELOW, "undecided"),
        (float("nan"), float("nan"), BELOW_0, "undecided"),
    ],
)
def test_decide_reads_which_side_of_the_bound_the_whole_interval_lies(low, high, claim, expected):
    assert assess.decide(interval(low, high), claim) == expected


def test_holm_steps_down_deciding_what_bonferroni_would_leave_open():
    # three comparisons, alpha 0.05: step 1 at 98.33 %, step 2 at 97.5 %, step 3 at 95 %
    a = by_confidence({0.9833: (-0.30, -0.10)})
    b = by_confidence({0.9833: (-0.20, 0.01), 0.975: (-0.18, -0.01)})
    c = by_confidence({0.9833: (-0.10, 0.10), 0.975: (-0.09, 0.08), 0.95: (-0.05, 0.04)})
    out = assess.holm([a, b, c], BELOW_0)
    assert [d for _, d in out] == ["supports", "supports", "undecided"]
    assert [round(i.confidence, 4) for i, _ in out] == [0.9833, 0.975, 0.95]


@pytest.mark.parametrize(
    "intervals, expected",
    [
        ([(-0.3, -0.1), (-0.1, 0.1)], "holds"),  # every decided one supports
        ([(0.1, 0.3), (-0.1, 0.1)], "does not hold"),  # every decided one contradicts
        ([(-0.3, -0.1), (-0.3, -0.2), (-0.4, -0.1), (0.1, 0.3)], "mixed"),  # derma finding 2's shape: 3 ✓ and 1 ✗
        ([(-0.1, 0.1), (-0.2, 0.05)], "cannot be told apart"),
    ],
)
def test_the_outcome_follows_the_decided_comparisons(intervals, expected):
    assert assess.assess([judged(lo, hi, f"c{i}") for i, (lo, hi) in enumerate(intervals)], BELOW_0).outcome == expected


@pytest.mark.parametrize("low, high", [(-0.3, -0.1), (0.1, 0.3)], ids=["would hold", "would not hold"])
def test_comparisons_without_transfer_count_for_neither_side(low, high):
    """A comparison whose reference arm (the first: the one the finding says transfers more) does not beat its
    control is `no transfer` whatever its interval says, and a finding made only of such comparisons has no
    transfer to compare, in either direction."""
    lone = Comparison("c", fixed(low, high), arms=(STILL, MOVES))
    result = assess.assess([lone, lone], BELOW_0)
    assert result.outcome == "no transfer to compare"
    assert [j.status for j in result.judged] == ["no transfer", "no transfer"] and not result.decided("supports")
    assert result.outcome_any_arm == "no transfer to compare" and result.decided_by_silent_arms == []


def test_a_silent_arm_the_finding_says_transfers_less_is_evidence_not_a_reason_to_set_aside():
    """Kermany finding 2's shape: the IN arm drops the IN target's AUC far beyond noise, the R arm not at all. The
    comparison is judged (and supports), where setting aside on any silent arm left nothing to compare."""
    strong = Comparison("MNv2 IN, PGD: IN − R", fixed(-0.99, -0.9), arms=(MOVES, STILL))
    unmoved = Comparison("MNv2 R, PGD: R − IN", fixed(-0.01, 0.01), arms=(STILL, STILL))
    assert strong.status == "judged" and strong.status_by(assess.ANY_ARM) == "no transfer"
    assert strong.silent == (STILL,) and judged(-0.3, -0.1).silent == ()
    result = assess.assess([strong, unmoved], BELOW_0)
    assert result.outcome == "holds" and result.outcome_any_arm == "no transfer to compare"
    assert [j.status for j in result.judged] == ["judged", "no transfer"]
    assert result.judged[0].interval.confidence == pytest.approx(0.95)  # the only judged one: alone in Holm's family
    assert [j.label for j in result.decided_by_silent_arms] == ["MNv2 IN, PGD: IN − R"]


def test_silent_arms_that_change_no_outcome_are_not_listed():
    """Two supporting comparisons, one with a silent second arm: holds either way, so nothing is listed."""
    result = assess.assess([judged(-0.3, -0.1), Comparison("s", fixed(-0.3, -0.1), arms=(MOVES, STILL))], BELOW_0)
    assert result.outcome == result.outcome_any_arm == "holds" and result.decided_by_silent_arms == []


def test_an_arms_white_box_auc_is_relative_to_its_own_clean_auc():
    arm = Arm("row a PGD ε 0.02", interval(0.01, 0.05), whitebox_auc=0.17, attacker_clean_auc=0.85)
    assert arm.whitebox_relative == pytest.approx(0.2)
    assert MOVES.whitebox_relative is None  # not recorded: no ratio invented


def test_no_transfer_comparisons_leave_holms_family():
    """One judged comparison among no-transfer ones is judged at 95 %, as if alone."""
    result = assess.assess(
        [Comparison("x", fixed(0.1, 0.3), arms=(STILL,)), judged(-0.3, -0.1), Comparison("y", None, ("run absent",))],
        BELOW_0,
    )
    assert result.outcome == "holds"
    assert [j.status for j in result.judged] == ["no transfer", "judged", "not testable"]
    assert result.judged[1].interval.confidence == pytest.approx(0.95)
    assert result.reasons == ("run absent",)


def test_not_testable_only_when_nothing_was_judged_and_nothing_lacked_transfer():
    blocked = [Comparison("a", None, ("premise unmet: IN − R clean AUC +0.010 (-0.010, +0.030)",))]
    assert assess.assess(blocked, BELOW_0).outcome == "not testable"
    assert assess.assess(blocked + [Comparison("b", fixed(-1, -0.5), arms=(STILL,))], BELOW_0).outcome == (
        "no transfer to compare"
    )


def test_the_rule_is_symmetric_under_the_claims_direction():
    comparisons = [judged(-0.3, -0.1), judged(-0.1, 0.1)]
    assert assess.assess(comparisons, BELOW_0).outcome == "holds"
    assert assess.assess(comparisons, ABOVE_0).outcome == "does not hold"


def test_a_comparison_without_arms_needs_no_transfer():
    """Finding 6 (clean minus control) has no attacker arm: it is judged as it stands."""
    assert Comparison("control", fixed(0.0, 0.005)).status == "judged"
    assert assess.assess([Comparison("control", fixed(0.0, 0.005))], BOUND_BELOW).outcome == "holds"


# ---------------------------------------------------------------- paired intervals from score arrays
Y = np.array([0, 0, 0, 1, 1, 1])
SEPARATING = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])  # AUC 1 in every resample holding both classes
INVERTED = SEPARATING[::-1].copy()  # AUC 0 in every such resample


@pytest.mark.parametrize("groups", [None, np.array(["p0", "p0", "p1", "p2", "p3", "p3"])], ids=["images", "patients"])
def test_a_transfer_that_destroys_a_target_beats_one_that_leaves_it_alone(groups):
    d = assess.relative_difference(Y, groups, Scored(SEPARATING, INVERTED), Scored(SEPARATING, SEPARATING))
    assert (d(0.95).low, d(0.95).high) == (-1.0, -1.0)
    assert assess.assess([Comparison("Lite0", d, arms=(MOVES, MOVES))], BELOW_0).outcome == "holds"


def test_clean_minus_control_is_judged_on_its_interval_not_its_point():
    # the control swaps one positive below one negative: AUC 1 - 1/90, so clean - control is 0.011 > 0.01 as a
    # point, but resamples without that pair give 0: the interval spans 0.01
    y = np.array([0] * 10 + [1] * 9)
    clean = np.arange(19, dtype=float)
    control = clean.copy()
    control[9], control[10] = clean[10], clean[9]
    d = assess.auc_difference(y, None, clean, control)
    assert d(0.95).point == pytest.approx(1 / 90) and d(0.95).low < 0.01 < d(0.95).high
    assert assess.assess([Comparison("FGSM", d)], BOUND_BELOW).outcome == "cannot be told apart"


def test_a_target_at_chance_and_an_unmet_premise_are_reasons_not_outcomes():
    (reason,) = assess.at_chance(interval(0.48, 0.58), "Lite0 R (d1/10)")
    assert reason == "Lite0 R (d1/10) at chance (clean AUC lower bound 0.480)"
    assert assess.at_chance(interval(0.51, 0.61), "x") == ()
    assert assess.premise(interval(0.01, 0.09), "IN − R clean AUC") == ()
    (unmet,) = assess.premise(interval(-0.02, 0.06), "Lite0 IN − R clean AUC")
    assert unmet == "premise unmet: Lite0 IN − R clean AUC +0.020 (-0.020, +0.060)"
