"""The worst case over every tier and what the test set can show, against answers worked out by hand."""

from __future__ import annotations

import math
import re

import pytest

from medaudit.attacks import TIERS
from medaudit.judging.harm import auc_standard_error, sample_size, sample_sizes, tally, worst_case
from medaudit.scenario import Scenario
from tests.fixtures_results import iv, make_cell, make_choice, make_results


def test_a_tally_counts_both_ways_and_scales_to_1000_screened():
    # 20 diseased, 80 healthy; at 10% prevalence: net missed = 1000 x 0.1 x (5 - 1) / 20 = 20,
    # net false alarms = 1000 x 0.9 x (2 - 6) / 80 = -45 (the perturbation cleared more false alarms than it made)
    t = tally(lost=5, gained=1, created=2, removed=6, positives=20, negatives=80, prevalence=0.1)
    assert t.sensitivity_change == pytest.approx(-4 / 20)
    assert t.specificity_change == pytest.approx(4 / 80)
    assert t.missed_per_1000 == pytest.approx(20.0)
    assert t.false_alarms_per_1000 == pytest.approx(-45.0)


def _binary_cell(tier, attacker, eps, adv, *, lost, gained, created, removed, noise=(0, 0, 0, 0)):
    c = make_cell(tier if tier != "transfer" else "row", attacker, "fgsm", eps, adv, clean=0.8, tier=tier)
    p, n = c.operating_point.positives, c.operating_point.negatives
    op = c.operating_point.model_copy(
        update={
            "sensitivity_clean": 0.5,
            "sensitivity_adversarial": 0.5 + (gained - lost) / p,
            "specificity_clean": 0.9,
            "specificity_adversarial": 0.9 + (removed - created) / n,
            "true_positives_lost": lost,
            "true_positives_gained": gained,
            "false_positives_created": created,
            "false_positives_removed": removed,
            "true_positives_lost_control": noise[0],
            "true_positives_gained_control": noise[1],
            "false_positives_created_control": noise[2],
            "false_positives_removed_control": noise[3],
        }
    )
    return c.model_copy(update={"operating_point": op})


def test_the_worst_case_is_over_every_tier_and_its_words_agree_with_its_numbers():
    transfer = _binary_cell("transfer", "s0", 0.02, 0.6, lost=7, gained=40, created=72, removed=3, noise=(5, 30, 61, 2))
    whitebox = _binary_cell("whitebox", "whitebox", 0.02, 0.3, lost=90, gained=2, created=50, removed=4)
    beyond = _binary_cell("query", "query", 0.5, 0.1, lost=200, gained=0, created=200, removed=0)  # not admissible
    choice = make_choice("fgsm", (0.02,), (0.02, 0.5), tier="transfer")
    w = worst_case([transfer, whitebox, beyond], [choice], card_prevalence=None)
    assert (w.tier, w.attacker_id) == ("whitebox", "whitebox")  # the bound tiers count: the lowest relative AUC
    # the transfer cell alone: sensitivity rose (40 gained, 7 lost), so the words say it rose, never "lost" alone
    w = worst_case([transfer], [choice], card_prevalence=0.05)
    p, n = w.positives, w.negatives
    a, noise, crafting = w.attack, w.noise, w.crafting
    assert a.sensitivity_change == pytest.approx(transfer.operating_point.sensitivity_adversarial - 0.5)
    assert a.specificity_change == pytest.approx(transfer.operating_point.specificity_adversarial - 0.9)
    assert a.sensitivity_change > 0 and a.specificity_change < 0
    assert (crafting.true_positives_lost, crafting.true_positives_gained) == (2, 10)
    assert (crafting.false_positives_created, crafting.false_positives_removed) == (11, 1)
    assert crafting.missed_per_1000 == pytest.approx(a.missed_per_1000 - noise.missed_per_1000)
    assert a.missed_per_1000 == pytest.approx(1000 * 0.05 * (7 - 40) / p) and a.missed_per_1000 < 0
    assert a.false_alarms_per_1000 == pytest.approx(1000 * 0.95 * (72 - 3) / n)
    text = w.statement
    assert "lost 7 true positives and gained 40 (net sensitivity +" in text
    assert "created 72 false positives and removed 3 (net specificity -" in text
    assert "Noise of the same size lost 5 true positives and gained 30" in text
    assert "Crafting adds -8 net missed diseased cases and +10 net false alarms beyond noise" in text
    assert f"{abs(a.missed_per_1000):.3g} fewer missed diseased patients" in text
    assert "at 5% prevalence (the card's)" in text
    assert re.search(r"at ε 2\.55 grey levels \(0\.02 in \[-1, 1\] units\)", text)


def test_the_test_sets_prevalence_is_used_and_said_when_the_card_states_none():
    cell = _binary_cell("transfer", "s0", 0.02, 0.6, lost=1, gained=0, created=0, removed=0)
    w = worst_case([cell], [make_choice("fgsm", (0.02,), (0.02,), tier="transfer")], card_prevalence=None)
    assert w.prevalence == pytest.approx(w.positives / (w.positives + w.negatives))
    assert "(the test set's; the card states none)" in w.statement


def test_hanley_mcneil_standard_error_by_hand():
    # A = 0.5: Q1 = Q2 = 1/3; with 10 and 10 cases SE^2 = (0.25 + 9/12 + 9/12) / 100 = 0.0175
    assert auc_standard_error(0.5, 10, 10) == pytest.approx(math.sqrt(0.0175))


def test_a_test_set_too_small_for_a_criterions_margin_says_so():
    scenario = Scenario.model_validate({"name": "s", "gate": {"min_relative_auc": 0.8}})
    cell = make_cell("whitebox", "whitebox", "apgd", 0.02, 0.4, clean=0.5, tier="whitebox")
    small = cell.model_copy(
        update={
            "auc_clean": iv(0.5, 0.4, 0.6),
            "operating_point": cell.operating_point.model_copy(update={"positives": 10, "negatives": 10}),
        }
    )
    s = sample_size("whitebox", small, scenario)
    # z(0.975) x sqrt(0.0175) = 1.95996 x 0.13229 = 0.2593 AUC, 52% of 0.5: more than C-REL-AUC's margin of 20%
    assert s.detectable_auc_drop == pytest.approx(0.2593, abs=1e-4)
    assert s.detectable_relative_drop == pytest.approx(0.5186, abs=1e-4)
    assert s.auc_half_width == pytest.approx(0.1) and s.too_small_for == ("C-REL-AUC",)
    assert s.statement.endswith("too few to show that C-REL-AUC holds.")
    big = small.model_copy(
        update={"operating_point": cell.operating_point.model_copy(update={"positives": 500, "negatives": 500})}
    )
    assert sample_size("whitebox", big, scenario).too_small_for == ()


def test_every_tier_that_ran_gets_its_sample_size():
    results = make_results()
    assert [s.tier for s in sample_sizes(results.cells, results.scenario, TIERS)] == [
        t for t in TIERS if any(c.tier == t for c in results.cells)
    ]


def test_a_demonstration_or_not_a_device_is_not_for_submission():
    from medaudit.audit.assemble import readiness

    for use, words in (
        ("Demonstration only, not a medical device.", "not a medical device"),
        ("A demonstration of the audit.", "demonstration"),
    ):
        running = make_results(intended_use=use)
        got = readiness(running, (), ())
        assert not got.ready
        assert f"the card's intended use says “{words}”: not a device to submit" in got.reasons
    assert readiness(make_results(intended_use="Triage of chest radiographs, read by a radiologist."), (), ()).ready
