"""The gate judged by hand: every admissible epsilon, the most harmful fit attacker, unfit attackers, noise, ties,
and what spans tiers (a white-box bound that settles a criterion, gradient masking, the verdict over gated tiers)."""

from __future__ import annotations

import math
import typing

import pytest

from medaudit.attacks import APGD, Square
from medaudit.judging.harm import worst_case
from medaudit.judging.rules import NO_CRITERIA
from medaudit.judging.verdict import MASKING_MARGIN, judge
from medaudit.records.breaking import BreakingEpsilon, MeasuredEpsilon
from medaudit.records.criteria import CONTROL_STEPS, CONTROLS, CRITERIA
from medaudit.records.measurements import BoundCheck, CellRecord, IntervalRecord, TierStatus
from medaudit.records.wording import WORST_OVER_ATTACKS, bound_check_text, breaking_text
from medaudit.scenario.threat_model import GateSection
from tests.fixtures_results import iv, make_breaking, make_cell, make_choice, make_scenario, make_surrogate

ROW = "same-imagenet-d2"
REL = {"min_relative_auc": 0.8}
DROP = {"max_adversarial_specific_drop": 0.1}
NOISE = {"min_control_relative_auc": 0.9}
EPS3 = (0.01, 0.02, 0.03)
PGD_ID = "pgd-step0.01-it20"


def _cell(
    sid: str, eps: float, *, attack: str = "fgsm", rel=None, drop=None, noise=None, adv: float = 0.6, row: str = ROW
) -> CellRecord:
    return make_cell(row, sid, attack, eps, adv, relative=rel, drop=drop, control_relative=noise)


def _judge(
    cells: list[CellRecord],
    gate: dict,
    *,
    surrogates=None,
    admissible=None,
    tiers=(),
    gated=None,
    checks=(),
    order=None,
    grid=None,
):
    attacks = list(dict.fromkeys(c.attack_id for c in cells))
    admissible = admissible or {a: EPS3 for a in attacks}
    if surrogates is None:
        transfer = [c for c in cells if c.tier == "transfer"]
        surrogates = [
            make_surrogate(ROW, sid, attacks=[a for a in attacks if a in ("fgsm", "pgd-step0.01-it20")])
            for sid in dict.fromkeys(c.attacker_id for c in transfer)
        ]
    tier_of = {c.attack_id: c.tier for c in cells}
    choices = [make_choice(a, admissible[a], *((grid,) if grid else ()), tier=tier_of[a]) for a in attacks]
    specs = list({c.attack_id: c.attack for c in cells}.values())
    scenario = make_scenario(gate={**gate, **({"tiers": gated} if gated else {})}, rows={ROW: None}, attacks=specs)
    statuses = [
        TierStatus(tier=t, available=True, reason="", images=200, target_queries=0, seconds=1.0, checks=checks)
        for t in tiers
    ]
    return judge(scenario, cells, surrogates, choices, make_breaking(scenario, cells, choices), statuses, order)


def _run(cells: list[CellRecord], gate: dict, **kw):
    judged = _judge(cells, gate, **kw)
    return judged.rules, judged.verdict, judged.tier_verdicts


def test_registry_criteria_are_gate_fields_and_cell_intervals():
    hints = typing.get_type_hints(CellRecord)
    assert len({c.id for c in CRITERIA}) == len({c.key for c in CRITERIA}) == len(CRITERIA)
    for c in CRITERIA:
        assert c.threshold_field in GateSection.model_fields, c.id
        assert hints[c.cell_field] is IntervalRecord, c.id
        assert c.control_id in CONTROLS and c.control_id in CONTROL_STEPS, c.id
        assert len(CONTROL_STEPS[c.control_id].split()) <= 12, c.id
        assert c.threshold_field in NO_CRITERIA, c.id


def test_the_worst_admissible_epsilon_decides_and_is_named():
    # 0.01 passes, 0.02 fails, 0.03 straddles; 0.04 is worse still but not admissible (SSIM)
    cells = [
        _cell("s0", 0.01, rel=iv(0.85, 0.82, 0.88)),
        _cell("s0", 0.02, rel=iv(0.70, 0.65, 0.75)),
        _cell("s0", 0.03, rel=iv(0.80, 0.76, 0.84)),
        _cell("s0", 0.04, rel=iv(0.30, 0.25, 0.35)),
    ]
    rules, verdict, _ = _run(cells, REL)
    assert [(r.id, r.status, r.epsilon_pm1, r.attacker_id) for r in rules] == [
        (f"{ROW}/fgsm/min-relative-auc", "FAIL", 0.02, "s0")
    ]
    assert rules[0].value.low == 0.65 and rules[0].criterion_id == "C-REL-AUC"
    assert rules[0].threat_id == f"T-{ROW}" and rules[0].control_id == "CTL-IMAGE-INTEGRITY"
    assert "ε 0.02 (2.55 grey levels)" in rules[0].message and "0.01, 0.02, 0.03" in rules[0].message
    assert verdict == "FAIL"


def test_inconclusive_at_a_small_epsilon_outranks_a_pass_at_the_largest():
    cells = [
        _cell("s0", 0.01, drop=iv(0.08, 0.04, 0.12)),
        _cell("s0", 0.02, drop=iv(0.05, 0.02, 0.08)),
        _cell("s0", 0.03, drop=iv(0.06, 0.03, 0.09)),
    ]
    rules, verdict, _ = _run(cells, DROP)
    assert (rules[0].status, rules[0].epsilon_pm1, rules[0].value.high) == ("INCONCLUSIVE", 0.01, 0.12)
    assert verdict == "INCONCLUSIVE"


@pytest.mark.parametrize(
    "gate, field, intervals, eps",
    [
        (REL, "rel", (iv(0.80, 0.78, 0.82), iv(0.79, 0.76, 0.82), iv(0.81, 0.77, 0.85)), 0.02),  # lowest lower bound
        (DROP, "drop", (iv(0.10, 0.08, 0.12), iv(0.11, 0.07, 0.14), iv(0.10, 0.09, 0.13)), 0.02),  # highest upper bound
    ],
    ids=["at-least", "at-most"],
)
def test_ties_go_to_the_most_harmful_bound(gate, field, intervals, eps):
    cells = [_cell("s0", e, **{field: i}) for e, i in zip(EPS3, intervals)]
    rules, _, _ = _run(cells, gate)
    assert [(r.status, r.epsilon_pm1) for r in rules] == [("INCONCLUSIVE", eps)]


def test_the_seed_most_harmful_to_the_target_is_judged_and_named():
    cells = [_cell(s, e, rel=iv(0.9, 0.85, 0.95)) for s in ("s0", "s1") for e in EPS3]
    cells[4] = _cell("s1", 0.02, rel=iv(0.80, 0.78, 0.82))  # one seed straddles at one epsilon
    ensemble = [_cell("ens", e, rel=iv(0.86, 0.81, 0.91)) for e in EPS3]
    surrogates = [
        make_surrogate(ROW, "s0", 0),
        make_surrogate(ROW, "s1", 1),
        make_surrogate(ROW, "ens", -1, member_ids=("s0", "s1")),
    ]
    rules, verdict, _ = _run(cells + ensemble, REL, surrogates=surrogates)
    assert [(r.status, r.attacker_id, r.epsilon_pm1) for r in rules] == [("INCONCLUSIVE", "s1", 0.02)]
    assert "most harmful of 3 fit attacker(s)" in rules[0].message
    # the ensemble is judged like a seed: when it hurts most, it is the one named
    ensemble[0] = _cell("ens", 0.01, rel=iv(0.7, 0.65, 0.75))
    rules, verdict, _ = _run(cells + ensemble, REL, surrogates=surrogates)
    assert (rules[0].status, rules[0].attacker_id, rules[0].epsilon_pm1, verdict) == ("FAIL", "ens", 0.01, "FAIL")


def test_a_row_of_unfit_surrogates_is_inconclusive_never_pass():
    cells = [_cell("s0", e, rel=iv(0.95, 0.92, 0.98)) for e in EPS3]
    reasons = ("clean test AUC lower bound 0.48 < floor 0.60",)
    rules, verdict, _ = _run(cells, REL, surrogates=[make_surrogate(ROW, "s0", fit=False, reasons=reasons)])
    assert [r.status for r in rules] == ["INCONCLUSIVE"] and verdict == "INCONCLUSIVE"
    assert "no fit attacker" in rules[0].message and reasons[0] in rules[0].message


def test_a_failure_measured_with_an_unfit_surrogate_is_still_a_failure():
    cells = [_cell("s0", e, rel=iv(0.6, 0.55, 0.65)) for e in EPS3]
    rules, verdict, _ = _run(cells, REL, surrogates=[make_surrogate(ROW, "s0", fit=False, reasons=("at chance",))])
    assert [r.status for r in rules] == ["FAIL"] and verdict == "FAIL"
    assert "unfit attacker (at chance): still a FAIL" in rules[0].message


@pytest.mark.parametrize(
    "unfit_interval, status",
    [
        (iv(0.80, 0.76, 0.84), "PASS"),  # the unfit seed's inconclusive result is no evidence: the fit seed passes
        (iv(0.60, 0.55, 0.65), "FAIL"),  # but its failure is
    ],
    ids=["unfit-inconclusive-ignored", "unfit-fail-counts"],
)
def test_with_some_fit_seeds_the_fit_ones_are_judged(unfit_interval, status):
    cells = [_cell("s0", e, rel=iv(0.9, 0.85, 0.95)) for e in EPS3] + [_cell("s1", e, rel=unfit_interval) for e in EPS3]
    surrogates = [make_surrogate(ROW, "s0", 0), make_surrogate(ROW, "s1", 1, fit=False, reasons=("budget",))]
    rules, verdict, _ = _run(cells, REL, surrogates=surrogates)
    assert [r.status for r in rules] == [status] and verdict == status
    assert rules[0].attacker_id == ("s0" if status == "PASS" else "s1")


def test_noise_fragility_is_its_own_criterion():
    cells = [
        _cell("s0", e, rel=iv(0.95, 0.92, 0.98), noise=iv(n, n - 0.01, n + 0.01))
        for e, n in zip(EPS3, (0.97, 0.93, 0.86))
    ]
    rules, verdict, _ = _run(cells, {**REL, **NOISE})
    assert [(r.id, r.criterion_id, r.status, r.epsilon_pm1) for r in rules] == [
        (f"{ROW}/fgsm/min-relative-auc", "C-REL-AUC", "PASS", 0.01),
        (f"{ROW}/fgsm/min-control-relative-auc", "C-NOISE", "FAIL", 0.03),
    ]
    assert rules[1].control_id == "CTL-NOISE-ROBUST" and "noise" in rules[1].rule
    assert verdict == "FAIL"


def test_worst_over_attacks_per_row_and_criterion():
    cells = [_cell("s0", e, rel=iv(0.9, 0.86, 0.94)) for e in EPS3] + [
        _cell("s0", e, attack=PGD_ID, rel=iv(0.84, 0.79, 0.89)) for e in EPS3
    ]
    rules, verdict, _ = _run(cells, REL)
    assert [r.id for r in rules] == [
        f"{ROW}/fgsm/min-relative-auc",
        f"{ROW}/{PGD_ID}/min-relative-auc",
        f"{ROW}/{WORST_OVER_ATTACKS}/min-relative-auc",
    ]
    worst = rules[-1]
    assert (worst.status, worst.attack_id, worst.value.low) == ("INCONCLUSIVE", WORST_OVER_ATTACKS, 0.79)
    assert worst.message.startswith(f"worst attack {PGD_ID};") and verdict == "INCONCLUSIVE"


def test_no_criteria_gives_one_inconclusive_rule_saying_so():
    cells = [_cell("s0", e) for e in EPS3]
    rules, verdict, tiers = _run(cells, {})
    assert [(r.id, r.criterion_id, r.status, r.message) for r in rules] == [
        ("gate/acceptance-criteria", "C-NONE", "INCONCLUSIVE", NO_CRITERIA)
    ]
    assert verdict == "INCONCLUSIVE" and [t.status for t in tiers] == ["INCONCLUSIVE"]


def test_an_attack_without_admissible_epsilon_is_an_error_naming_the_fix():
    cells = [_cell("s0", e, rel=iv(0.95)) for e in EPS3] + [_cell("s0", e, attack=PGD_ID, rel=iv(0.95)) for e in EPS3]
    rules, verdict, _ = _run(cells, {**REL, **DROP}, admissible={"fgsm": EPS3, PGD_ID: ()})
    errors = [r for r in rules if r.status == "ERROR"]
    assert {r.id for r in errors} == {
        f"{ROW}/{PGD_ID}/min-relative-auc",
        f"{ROW}/{PGD_ID}/max-adversarial-specific-drop",
        f"{ROW}/{WORST_OVER_ATTACKS}/min-relative-auc",
        f"{ROW}/{WORST_OVER_ATTACKS}/max-adversarial-specific-drop",
    }
    assert all("extend `epsilons_pm1` downward" in r.message for r in errors)
    assert verdict == "ERROR"


def test_missing_cell_and_undefined_interval_are_errors():
    rules, verdict, _ = _run([_cell("s0", 0.01, rel=iv(0.95)), _cell("s0", 0.02, rel=iv(0.95))], REL)
    assert verdict == "ERROR" and "no cell for s0 at ε 0.03" in rules[0].message
    nan = iv(0.9, math.nan, math.nan)
    rules, verdict, _ = _run([_cell("s0", e, rel=nan if e == 0.02 else iv(0.6)) for e in EPS3], REL)
    assert verdict == "ERROR" and "undefined" in rules[0].message  # an undefined interval outranks a failure


@pytest.mark.parametrize(
    "statuses, verdict",
    [
        (("PASS", "PASS"), "PASS"),
        (("PASS", "INCONCLUSIVE"), "INCONCLUSIVE"),
        (("INCONCLUSIVE", "FAIL"), "FAIL"),
    ],
)
def test_verdict_precedence(statuses, verdict):
    interval = {"PASS": iv(0.9, 0.85, 0.95), "FAIL": iv(0.6, 0.55, 0.65), "INCONCLUSIVE": iv(0.8, 0.75, 0.85)}
    rows = {f"same-imagenet-d{k + 1}": s for k, s in enumerate(statuses)}
    cells = [make_cell(row, f"s-{row}", "fgsm", e, 0.6, relative=interval[s]) for row, s in rows.items() for e in EPS3]
    surrogates = [make_surrogate(row, f"s-{row}") for row in rows]
    scenario = make_scenario(gate=REL, rows=dict.fromkeys(rows), attacks=[cells[0].attack])
    judged = judge(scenario, cells, surrogates, [make_choice("fgsm", EPS3)], (), (), None)
    assert [r.status for r in judged.rules] == list(statuses) and judged.verdict == verdict


def test_judging_needs_each_attackers_fitness():
    surrogate = make_surrogate(ROW, "s0").model_copy(update={"fitness": ()})
    with pytest.raises(ValueError, match="attacker s0 has no fitness for fgsm"):
        _run([_cell("s0", e) for e in EPS3], REL, surrogates=[surrogate])


def test_worst_case_is_the_lowest_relative_auc_at_an_admissible_epsilon():
    cells = [
        _cell("s0", 0.01, adv=0.7),
        _cell("s0", 0.02, adv=0.55),
        _cell("s0", 0.03, adv=0.58),
        _cell("s0", 0.04, adv=0.3),
    ]  # 0.04 is lower but beyond the perceptibility budget
    worst = worst_case(cells, [make_choice("fgsm", EPS3)], None)
    assert (worst.attack_id, worst.epsilon_pm1, worst.auc_adversarial.point) == ("fgsm", 0.02, 0.55)
    assert "at ε 2.55 grey levels (0.02 in [-1, 1] units)" in worst.statement
    assert worst_case(cells, [make_choice("fgsm", ())], None) is None


# ---------------------------------------------------------------- across tiers
WHITEBOX = APGD(name="apgd")
QUERY = Square(name="square")


def _bound(tier: str, eps: float, rel: IntervalRecord, attack=None) -> CellRecord:
    attack = attack or (WHITEBOX if tier == "whitebox" else QUERY)
    return make_cell(tier, tier, attack.id, eps, 0.6, relative=rel, tier=tier, attack=attack)


def test_bound_tiers_are_threats_of_their_own_reported_beside_the_gated_verdict():
    transfer = [_cell("s0", e, rel=iv(0.9, 0.86, 0.94)) for e in EPS3]
    whitebox = [_bound("whitebox", e, iv(r, r - 0.04, r + 0.04)) for e, r in zip(EPS3, (0.7, 0.4, 0.2))]
    judged = _judge(transfer + whitebox, REL, tiers=("whitebox",))
    assert [(r.tier, r.threat_id, r.status) for r in judged.rules] == [
        ("transfer", f"T-{ROW}", "PASS"),
        ("whitebox", "T-whitebox", "FAIL"),
    ]
    assert judged.verdict == "PASS"  # only the transfer tier is gated
    assert [(v.tier, v.gated, v.status) for v in judged.tier_verdicts] == [
        ("transfer", True, "PASS"),
        ("whitebox", False, "FAIL"),
    ]
    assert [(r.tier, r.status) for r in judged.rows] == [("transfer", "PASS"), ("whitebox", "FAIL")]
    assert judged.rows[1].result.startswith("ε* 1.28 grey levels [0.01] (1.28–1.28); holds at 0")  # the first point
    gated = _judge(transfer + whitebox, REL, tiers=("whitebox",), gated=["transfer", "whitebox"])
    assert gated.verdict == "FAIL"


def test_a_transfer_row_with_no_fit_attacker_states_the_bounds():
    transfer = [_cell("s0", e, rel=iv(0.97, 0.93, 1.0)) for e in EPS3]
    whitebox = [_bound("whitebox", e, iv(r, r - 0.04, r + 0.04)) for e, r in zip(EPS3, (0.5, 0.3, 0.2))]
    unfit = [make_surrogate(ROW, "s0", fit=False, reasons=("its perturbations do not transfer",))]
    judged = _judge(transfer + whitebox, REL, surrogates=unfit, tiers=("whitebox",))
    rule = judged.rules[0]
    assert rule.status == "INCONCLUSIVE"
    assert rule.message.startswith(
        "no transfer attacker we trained moves it; an attacker with its weights breaks it: ε*"
    )
    assert judged.rows[0].reason == "no fit transfer attacker: its perturbations move no other model"


def test_a_white_box_bound_that_holds_everywhere_settles_the_criterion_for_every_tier():
    transfer = [_cell("s0", e, rel=iv(0.97, 0.93, 1.0)) for e in EPS3]
    whitebox = [_bound("whitebox", e, iv(0.95, 0.9, 0.99)) for e in EPS3]
    unfit = [make_surrogate(ROW, "s0", fit=False, reasons=("its perturbations do not transfer",))]
    judged = _judge(transfer + whitebox, REL, surrogates=unfit, tiers=("whitebox",))
    assert [r.status for r in judged.rules] == ["PASS", "PASS"] and judged.verdict == "PASS"
    assert judged.rules[0].message.startswith("holds for every tier: the white-box attacker")
    assert judged.masking is None


def _check(name: str, passed: bool, bound: float, reference: float, eps: float = 0.03) -> BoundCheck:
    tolerance = {"convergence": 0.005, "reach": 0.0, "order": 0.01}[name]
    against = {"convergence": "apgd-margin+ce-it200-r4", "reach": "AUC 0.05", "order": "query attacker query"}[name]
    return BoundCheck(
        check=name,
        passed=passed,
        epsilon_pm1=eps,
        images=64,
        auc_bound=bound,
        auc_reference=reference,
        tolerance=tolerance,
        against=against,
    )


@pytest.mark.parametrize(
    "checks, order",
    [
        ((_check("convergence", False, 0.80, 0.70),), None),  # more iterations still lower the AUC
        ((_check("reach", False, 0.40, 0.05, eps=0.5),), None),  # cannot reach chance: masked or broken gradients
        ((), _check("order", False, 0.90, 0.60)),  # weaker than a query attacker
    ],
    ids=["convergence", "reach", "order"],
)
def test_a_white_box_bound_that_fails_a_check_passes_nothing(checks, order):
    transfer = [_cell("s0", e, rel=iv(0.97, 0.93, 1.0)) for e in EPS3]
    whitebox = [_bound("whitebox", e, iv(0.95, 0.9, 0.99)) for e in EPS3]
    unfit = [make_surrogate(ROW, "s0", fit=False, reasons=("its perturbations do not transfer",))]
    judged = _judge(transfer + whitebox, REL, surrogates=unfit, tiers=("whitebox",), checks=checks, order=order)
    assert [r.status for r in judged.rules] == ["INCONCLUSIVE", "INCONCLUSIVE"]  # its own PASS, and nothing carried
    assert judged.verdict == "INCONCLUSIVE"  # never exit 0
    failed = (checks + ((order,) if order else ()))[0]
    assert judged.unverified == f"not a verified bound: it fails {bound_check_text(failed)}"
    wb = next(v for v in judged.tier_verdicts if v.tier == "whitebox")
    assert wb.unverified == judged.unverified and wb.order == order and wb.statement.endswith("not a verified bound.")
    row = next(r for r in judged.rows if r.tier == "whitebox")
    assert row.reason.startswith("not a verified bound") and "iterations and restarts" in row.next_step


def test_a_verified_bound_whose_grid_stops_short_of_the_perceptibility_bound_settles_nothing():
    transfer = [_cell("s0", e, rel=iv(0.97, 0.93, 1.0)) for e in EPS3]
    whitebox = [_bound("whitebox", e, iv(0.95, 0.9, 0.99)) for e in EPS3]
    unfit = [make_surrogate(ROW, "s0", fit=False, reasons=("its perturbations do not transfer",))]
    passed = (_check("convergence", True, 0.70, 0.70), _check("reach", True, 0.0, 0.05, eps=0.5))
    kw = dict(surrogates=unfit, tiers=("whitebox",), checks=passed)
    reached = _judge(transfer + whitebox, REL, **kw)
    assert [r.status for r in reached.rules] == ["PASS", "PASS"] and reached.unverified is None
    short = _judge(transfer + whitebox, REL, admissible={"fgsm": EPS3, WHITEBOX.id: EPS3}, grid=EPS3, **kw)
    assert [r.status for r in short.rules] == ["INCONCLUSIVE", "PASS"]  # every white-box epsilon was admissible


def test_bound_check_text_by_hand():
    assert bound_check_text(_check("convergence", False, 0.8, 0.7)) == (
        "convergence at ε 0.03 on 64 images: apgd-margin+ce-it200-r4 lowers its AUC 0.800 to 0.700 (at most 0.005 "
        "allowed)"
    )
    assert bound_check_text(_check("reach", True, 0.0, 0.05, eps=0.5)) == (
        "reach at ε 0.5 on 64 images: AUC 0.000 (at most 0.05)"
    )
    assert bound_check_text(_check("order", False, 0.9, 0.6)) == (
        "order at ε 0.03 on 64 images: white-box AUC 0.900 against 0.600 for the query attacker query (at most 0.01 "
        "above it)"
    )


def test_white_box_doing_worse_than_transfer_is_flagged_as_masking_and_settles_nothing():
    transfer = [_cell("s0", e, rel=iv(r, r - 0.02, r + 0.02)) for e, r in zip(EPS3, (0.95, 0.85, 0.82))]
    whitebox = [_bound("whitebox", e, iv(0.97, 0.93, 1.0)) for e in EPS3]
    unfit = [make_surrogate(ROW, "s0", fit=False, reasons=("its perturbations do not transfer",))]
    judged = _judge(transfer + whitebox, REL, surrogates=unfit, tiers=("whitebox",))
    assert judged.masking.startswith("at ε 0.03 the white-box attacker leaves 0.970 of the clean AUC where transfer")
    assert 0.97 - 0.82 > MASKING_MARGIN
    assert judged.rules[0].status == "INCONCLUSIVE"  # masked gradients prove nothing for the other tiers
    assert next(v for v in judged.tier_verdicts if v.tier == "whitebox").masking == judged.masking


def test_breaking_text_gives_the_bracket_the_points_and_the_margin():
    def b(point, low, high, bound, holds=0.008, bisected=2, grey=None):
        measured = [MeasuredEpsilon(epsilon_pm1=e, value=0.9, holds=True, bisection=False) for e in (0.005, 0.05, 0.1)]
        measured += [MeasuredEpsilon(epsilon_pm1=0.008, value=0.85, holds=True, bisection=True)] * bisected
        return BreakingEpsilon(
            criterion_id="C-REL-AUC",
            attacker_id="a",
            attack_id="pgd",
            tier="transfer",
            epsilon_pm1=point,
            holds_at_pm1=None if point is None else holds,
            low_pm1=low,
            high_pm1=high,
            largest_tried_pm1=0.1,
            measured=tuple(measured),
            search="bracket within 10%",
            one_grey_level_pm1=grey,
            bound_epsilon_pm1=bound,
            near_invisible_epsilon_pm1=None,
        )

    assert breaking_text(None) == "ε* not measured"
    # grey levels first (x 127.5), [-1, 1] units in brackets: 0.01 is 1.275 (1.28) grey levels, the budget's 0.08 is
    # 10.2; the bracket's low end 0.008 is 1.02
    assert breaking_text(b(0.01, 0.008, 0.0125, 0.08)) == (
        "ε* 1.28 grey levels [0.01] (1.02–1.59); holds at 1.02; 5 ε measured, 2 by bisection; 0.12× the budget's 10.2"
    )
    assert breaking_text(b(0.01, None, None, 0.08, bisected=0)) == (
        "ε* 1.28 grey levels [0.01] (no resample breaks up to 12.8, the largest tried); holds at 1.02; 3 ε "
        "measured; 0.12× the budget's 10.2"
    )
    # some resamples never break: the interval's high end is beyond the largest epsilon tried (0.1, 12.8 levels)
    assert breaking_text(b(0.01, 0.008, None, 0.08)) == (
        "ε* 1.28 grey levels [0.01] (1.02 to beyond 12.8, the largest tried); holds at 1.02; 5 ε measured, 2 by "
        "bisection; 0.12× the budget's 10.2"
    )
    assert breaking_text(b(0.01, 0.008, 0.0125, None, holds=0.0)) == (
        "ε* 1.28 grey levels [0.01] (1.02–1.59); holds at 0; 5 ε measured, 2 by bisection; the budget is not "
        "reached up to 12.8 grey levels"
    )
    assert breaking_text(b(None, None, None, 0.08)) == "ε* > 12.8 grey levels [0.1], the largest tried"
    one = 2 / 255  # one grey level, breaking where the clean image holds: nothing smaller can be delivered
    assert breaking_text(b(one, one, one, 0.08, holds=0.0, bisected=0, grey=one)) == (
        "breaks at the smallest change an 8-bit image can carry (ε* 1 grey level [0.00784], 3 ε measured); "
        "0.098× the budget's 10.2"
    )
    assert not b(one, one, one, 0.08, holds=0.0, grey=None).at_one_grey_level  # float delivery: finer changes exist
    assert not b(2 * one, one, one, 0.08, holds=one, grey=one).at_one_grey_level
