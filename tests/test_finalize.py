"""Finalize, by hand: which epsilons are admissible, whether an attacker is fit (it learned, and its perturbations
move a model of its row that did not make them beyond that model's control), the breaking epsilon, the spread."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medaudit.attacks import FGSM
from medaudit.judging.breaking_epsilon import Crossing, breaking_epsilon, crossing, first_break, midpoint, stop
from medaudit.judging.evidence import seed_spread
from medaudit.judging.finalize import attacker_fitness, choose_epsilons, transfers
from medaudit.records.measurements import CellRecord, EpsilonSearch, IntervalRecord, SearchStep, TransferCheck
from medaudit.scenario.threat_model import FitnessSection, Scenario


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
    attacker: str,
    eps: float,
    *,
    ssim: float = 0.95,
    relative: float = 0.8,
    drop: tuple[float, float, float] | None = (0.05, 0.02, 0.08),
    test_auc: IntervalRecord | None = None,
) -> CellRecord:
    return CellRecord(
        id=f"{attacker}/fgsm/eps{eps:g}",
        tier="transfer",
        attacker_id=attacker,
        member_ids=(attacker,),
        row_id="same-random-d2",
        attack_id="fgsm",
        attack=FGSM(name="fgsm"),
        epsilon_pm1=eps,
        epsilon_grey_levels=eps * 127.5,
        n_images=100,
        auc_clean=iv(0.9),
        auc_adversarial=iv(0.9 * relative),
        auc_control=iv(0.89),
        relative_auc=iv(relative),
        relative_auc_control=iv(0.99),
        adversarial_specific_drop=iv(0.89 - 0.9 * relative),
        per_class_auc_clean=(0.9,),
        per_class_auc_adversarial=(0.9 * relative,),
        surrogate_auc_clean=test_auc or iv(0.85),
        surrogate_auc_whitebox=0.1,
        transfer=None
        if drop is None
        else TransferCheck(
            model_ids=("b",), auc_adversarial=0.7, relative_auc=0.8, drop_beyond_control=iv(drop[0], drop[1], drop[2])
        ),
        operating_point=None,
        mean_ssim=ssim,
        mean_ssim_control=ssim,
        max_abs_delta_pm1=eps,
        target_queries=10,
    )


SCENARIO = Scenario(name="f", epsilons_pm1=[0.01, 0.02, 0.03], perceptibility={"min_mean_ssim": 0.9})


def test_epsilon_choice_admits_every_epsilon_at_or_above_the_bound():
    # two attackers; mean SSIM per epsilon: 0.01 -> 0.95, 0.02 -> (0.91 + 0.89)/2 = 0.90, 0.03 -> 0.85
    cells = [
        cell("a", 0.01, ssim=0.95),
        cell("b", 0.01, ssim=0.95),
        cell("a", 0.02, ssim=0.91),
        cell("b", 0.02, ssim=0.89),
        cell("a", 0.03, ssim=0.85),
        cell("b", 0.03, ssim=0.85),
    ]
    (choice,) = choose_epsilons(cells, SCENARIO, {})
    assert choice.curve == ((0.01, 0.95), (0.02, pytest.approx(0.90)), (0.03, 0.85))
    assert choice.admissible_epsilons_pm1 == (0.01, 0.02)
    assert choice.chosen_epsilon_pm1 == 0.02 and choice.bound_binds and choice.bound_epsilon_pm1 == 0.02
    assert choice.reason == "largest epsilon with mean SSIM ≥ 0.9: 0.02 (SSIM 0.900)"


def test_epsilon_choice_says_when_the_grid_not_the_bound_limited_epsilon():
    (choice,) = choose_epsilons([cell("a", 0.01, ssim=0.99), cell("a", 0.02, ssim=0.97)], SCENARIO, {})
    assert choice.admissible_epsilons_pm1 == (0.01, 0.02) and not choice.bound_binds
    assert choice.bound_epsilon_pm1 is None  # the bound was never reached: its epsilon is unknown
    assert "the grid, not perceptibility, limited epsilon" in choice.reason


def test_epsilon_choice_with_nothing_admissible():
    (choice,) = choose_epsilons([cell("a", 0.05, ssim=0.7)], SCENARIO, {})
    assert choice.chosen_epsilon_pm1 is None and choice.admissible_epsilons_pm1 == ()
    assert choice.reason.endswith("extend `epsilons_pm1` downward")


def test_epsilon_choice_takes_the_searchs_bound_and_says_when_ssim_rose():
    search = EpsilonSearch(
        attack_id="fgsm",
        attacker="a",
        n_images=32,
        steps=(SearchStep(epsilon_pm1=0.05, mean_ssim=0.85), SearchStep(epsilon_pm1=0.1, mean_ssim=0.88)),
        ceiling_pm1=1.0,
        bound_epsilon_pm1=0.02,
        near_invisible_epsilon_pm1=0.005,
        monotone=False,
        epsilons_pm1=(0.01, 0.02, 0.03),
    )
    cells = [cell("a", 0.01, ssim=0.95), cell("a", 0.02, ssim=0.91), cell("a", 0.03, ssim=0.85)]
    (choice,) = choose_epsilons(cells, SCENARIO, {"fgsm": search})
    assert (choice.bound_epsilon_pm1, choice.near_invisible_epsilon_pm1, choice.search) == (0.02, 0.005, search)
    assert choice.reason.endswith("so each epsilon was checked on its cells")


SECTION = FitnessSection(min_surrogate_auc=0.6, min_transfer_drop=0.0)


def test_an_attacker_is_fit_when_it_learned_and_moves_another_model_beyond_its_control():
    cells = [cell("a", 0.01, drop=(0.0, -0.02, 0.02)), cell("a", 0.02, drop=(0.05, 0.01, 0.09))]
    (choice,) = choose_epsilons(cells, SCENARIO, {})  # checked at the largest admissible epsilon, 0.02
    fit = attacker_fitness("fgsm", cells, choice, SECTION)
    assert fit.fit and fit.reasons == () and fit.epsilon_pm1 == 0.02
    assert fit.transfer.drop_beyond_control.low == 0.01 and fit.whitebox_auc == 0.1  # reported, not required


def test_an_attacker_at_chance_is_unfit():
    cells = [cell("a", 0.02, test_auc=iv(0.52, low=0.45))]
    (choice,) = choose_epsilons(cells, SCENARIO, {})
    fit = attacker_fitness("fgsm", cells, choice, SECTION)
    assert not fit.fit
    assert fit.reasons == ("clean test AUC 0.520 (lower bound 0.450) below the floor 0.6: it did not learn the task",)


def test_an_attacker_whose_perturbations_move_no_other_model_beyond_its_control_is_unfit():
    cells = [cell("a", 0.02, drop=(0.01, -0.01, 0.03))]
    (choice,) = choose_epsilons(cells, SCENARIO, {})
    fit = attacker_fitness("fgsm", cells, choice, SECTION)
    assert not fit.fit
    assert fit.reasons == (
        "fgsm at ε 0.02 lowers the AUC of its row's other models by +0.010 beyond the shuffled control "
        "(lower bound -0.010, needs > 0): its perturbations do not transfer",
    )
    lonely = [cell("a", 0.02, drop=None)]
    fit = attacker_fitness("fgsm", lonely, choose_epsilons(lonely, SCENARIO, {})[0], SECTION)
    assert not fit.fit and fit.reasons == ("its row has no model it is not made of, so its transfer cannot be checked",)


def test_transfer_is_criterion_2_strictly_above_its_floor():
    assert transfers(cell("a", 0.02, drop=(0.05, 0.001, 0.1)), 0.0)
    assert not transfers(cell("a", 0.02, drop=(0.05, 0.0, 0.1)), 0.0)  # at the floor: not beyond the control
    assert transfers(cell("a", 0.02, drop=None), 0.0) is None


def test_breaking_epsilon_is_the_smallest_measured_epsilon_that_breaks_by_hand():
    eps = np.array([0.01, 0.02, 0.04])
    # relative AUC 1 at 0, then 0.95, 0.85, 0.60: breaks 0.8 first at 0.04 (nothing between 0.02 and 0.04 is assumed)
    assert float(first_break(eps, np.array([0.95, 0.85, 0.6]), 0.8, True, 1.0)) == 0.04
    assert float(first_break(eps, np.array([0.7, 0.6, 0.5]), 0.8, True, 1.0)) == 0.01  # at the first point
    # an upper-bounded criterion (drop <= 0.1) from 0: 0.02, 0.05, 0.2 breaks first at 0.04
    assert float(first_break(eps, np.array([0.02, 0.05, 0.2]), 0.1, False, 0.0)) == 0.04
    assert first_break(eps, np.array([0.95, 0.9, 0.85]), 0.8, True, 1.0) == np.inf  # never at any measured epsilon
    assert first_break(eps, np.array([0.95, 0.9, 0.85]), 0.8, True, 0.7) == 0.0  # the clean value already fails
    assert np.isnan(first_break(eps, np.array([np.nan, 0.9, 0.85]), 0.8, True, 1.0))
    # the stop rule's straight-line crossing: a fifth of the way from 0.02 (0.85) to 0.04 (0.60)
    assert float(crossing(eps, np.array([0.95, 0.85, 0.6]), 0.8, True, 1.0)) == pytest.approx(0.024)
    assert float(crossing(eps, np.array([0.7, 0.6, 0.5]), 0.8, True, 1.0)) == pytest.approx(0.01 * 2 / 3)


def test_breaking_epsilon_bracket_and_interval_are_open_ended_when_resamples_do_not_break():
    eps = np.array([0.01, 0.02, 0.04])
    resampled = np.array([[0.95, 0.85, 0.6]] * 5 + [[0.9, 0.9, 0.9]] * 5 + [[0.7, 0.6, 0.5]] * 5 + [[np.nan] * 3])
    b = breaking_epsilon(
        eps, np.array([0.95, 0.85, 0.6]), resampled, threshold=0.8, at_least=True, start=1.0, confidence=0.9
    )
    assert (b.point, b.holds_at) == (0.04, 0.02)
    assert b.low == 0.01  # the earliest resamples break at the first point
    assert b.high is None  # a third of the resamples never break: "more than the largest epsilon measured"
    assert b.spread == math.inf
    never = breaking_epsilon(
        eps, np.array([0.95, 0.9, 0.9]), resampled[5:10], threshold=0.8, at_least=True, start=1.0, confidence=0.9
    )
    assert (never.point, never.holds_at, never.low, never.high) == (None, None, None, None)
    tight = breaking_epsilon(
        eps, np.array([0.95, 0.85, 0.6]), resampled[:5], threshold=0.8, at_least=True, start=1.0, confidence=0.9
    )
    assert (tight.low, tight.high, tight.spread) == (0.04, 0.04, 0.0)  # every resample the same: no spread


def test_bisection_midpoints_are_geometric_halve_from_zero_and_keep_to_whole_grey_levels():
    g = 2 / 255
    assert midpoint(0.01, 0.04, None) == pytest.approx(0.02)
    assert midpoint(0.0, 0.04, None) == pytest.approx(0.02)  # below the grid: halve
    assert midpoint(g, 9 * g, g) == pytest.approx(3 * g)  # sqrt(1 x 9) = 3 grey levels
    assert midpoint(2 * g, 3 * g, g) is None  # adjacent grey levels: nothing between
    assert midpoint(0.0, g, g) is None  # one grey level above clean: the smallest change a file carries
    assert midpoint(0.0, 2 * g, g) == pytest.approx(g)
    assert midpoint(5 * g, 7 * g, g) == pytest.approx(6 * g)  # sqrt(35) = 5.9 -> 6


def test_bisection_stops_for_each_reason_and_only_then():
    def c(point, holds, spread=0.0):
        return Crossing(point, holds, point, point, spread)

    g = 2 / 255
    assert stop(Crossing(None, None, None, None, math.inf), None) == "holds at every ε measured"
    assert stop(c(0.0205, 0.019), None) == "bracket within 10%"  # 0.0015 <= 0.1 x 0.0205
    assert stop(c(0.03, 0.01), None) is None
    assert stop(c(0.03, 0.01, spread=0.021), None) == "interval wider than the bracket"
    assert stop(c(3 * g, 2 * g), g) == "one grey level apart"
    assert stop(c(g, 0.0), g) == "one grey level apart"
    assert stop(c(8e-6, 0.0), None) == "float floor"
    assert stop(c(4 * g, g), g) is None


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


def test_order_check_sets_each_cell_against_the_white_box_at_an_epsilon_no_smaller():
    from medaudit.attacks import APGD, Square
    from medaudit.judging.finalize import ORDER_TOLERANCE, CellScores, order_check
    from tests.fixtures_results import make_cell

    apgd, square = APGD(name="apgd"), Square(name="square")
    y = np.array([0, 0, 1, 1, 1])
    low, high = np.array([0.9, 0.8, 0.1, 0.2, 0.3]), np.array([0.1, 0.2, 0.9, 0.8, 0.7])  # AUC 0 and 1
    wb = [make_cell("whitebox", "whitebox", apgd.id, e, 0.5, tier="whitebox", attack=apgd) for e in (0.01, 0.03)]
    query = make_cell("query", "query", square.id, 0.02, 0.5, tier="query", attack=square)

    def scores(by_id):
        return lambda c: by_id[c.id]

    all_images, last_four = CellScores(np.arange(5), low, low), CellScores(np.arange(1, 5), high[1:], high[1:])
    # white-box at 0.01 is ignored (below the query's 0.02); at 0.03 it leaves AUC 0 where the query leaves 1
    strong = {wb[0].id: CellScores(np.arange(5), high, high), wb[1].id: all_images, query.id: last_four}
    check = order_check([*wb, query], y, scores(strong))
    assert check.passed and (check.epsilon_pm1, check.images, check.auc_bound, check.auc_reference) == (0.03, 4, 0, 1)
    assert check.tolerance == ORDER_TOLERANCE and check.against == f"query attacker query ({square.id}) at ε 0.02"
    weak = {wb[1].id: CellScores(np.arange(5), high, high), query.id: CellScores(np.arange(1, 5), low[1:], low[1:])}
    weak[wb[0].id] = weak[wb[1].id]
    failed = order_check([*wb, query], y, scores(weak))
    assert not failed.passed and (failed.auc_bound, failed.auc_reference) == (1, 0)
    assert order_check([query], y, scores(weak)) is None  # no white-box cell: nothing to check
