"""The paper reproduction's verdicts and renderer (examples/reproduce_paper), without real data.

The verdict rule is tested on hand-worked intervals and on small score arrays whose paired bootstrap is known
in advance (a perfectly separating score keeps AUC 1 in every resample that holds both classes), so every
outcome is reached: holds, does not hold, cannot be told apart, not testable. The end-to-end test runs a
reproduction-shaped set of audits on generated images through `reproduce.run_target` (real training, real
attacks, real `run_audit`) and renders its section with `tables.render`, so the renderer cannot drift from the
results schema unnoticed.
"""

from __future__ import annotations

import json
import re
import shutil
import sys

import numpy as np
import pytest

from medaudit.errors import AuditInputError
from medaudit.metrics import Interval
from medaudit.results import read_results, write_results
from medaudit.scenario import FitnessSection, SurrogateRow, load_scenario
from tests.conftest import REPO, data_file, write_synthetic_npz
from tests.fixtures_results import iv, make_surrogate

sys.path.insert(0, str(REPO / "examples" / "reproduce_paper"))

import committed  # noqa: E402
import departures  # noqa: E402
import findings  # noqa: E402
import reproduce  # noqa: E402
import tables  # noqa: E402
import verdicts  # noqa: E402
from protocol import EXPERIMENTS, MODALITIES, Modality, RunEntry, Settings  # noqa: E402
from verdicts import Claim, Comparison, Scored, judge  # noqa: E402

BELOW_0 = Claim("below", 0.0, every=False, measure="d")
BOUND_BELOW = Claim("below", 0.01, every=True, measure="clean - control")
BOUND_ABOVE = Claim("above", -0.04, every=True, measure="relative AUC - 1")


def interval(low: float, high: float, confidence: float = 0.95) -> Interval:
    return Interval(point=(low + high) / 2, low=low, high=high, confidence=confidence, resamples=1000, degenerate=0)


def fixed(low: float, high: float):
    """An interval that does not depend on the confidence asked for."""
    return lambda confidence: interval(low, high, confidence)


def by_confidence(table: dict[float, tuple[float, float]]):
    """An interval per confidence level (rounded to 4 decimals), as a bootstrap would widen it."""
    return lambda confidence: interval(*table[round(confidence, 4)], confidence)


# ---------------------------------------------------------------- decide and Holm
@pytest.mark.parametrize(
    "low, high, claim, expected",
    [
        (-0.3, -0.1, BELOW_0, "supports"),  # wholly below 0
        (0.1, 0.3, BELOW_0, "contradicts"),  # wholly above 0
        (-0.1, 0.1, BELOW_0, "undecided"),  # spans 0
        (0.0, 0.02, BOUND_BELOW, "undecided"),  # spans the tolerance 0.01
        (0.011, 0.02, BOUND_BELOW, "contradicts"),  # wholly above the tolerance
        (-0.03, 0.01, BOUND_ABOVE, "supports"),  # relative AUC 0.97-1.01: wholly above 0.96
        (float("nan"), float("nan"), BELOW_0, "undecided"),  # every resample degenerate: no decision
    ],
)
def test_decide_reads_which_side_of_the_bound_the_whole_interval_lies(low, high, claim, expected):
    assert verdicts.decide(interval(low, high), claim) == expected


def test_holm_steps_down_deciding_what_bonferroni_would_leave_open():
    # three comparisons, alpha 0.05: step 1 at 1 - 0.05/3 = 98.33 %, step 2 at 97.5 %, step 3 at 95 %
    a = by_confidence({0.9833: (-0.30, -0.10)})  # decided at step 1
    b = by_confidence({0.9833: (-0.20, 0.01), 0.975: (-0.18, -0.01)})  # Bonferroni (98.33 %) leaves it open
    c = by_confidence({0.9833: (-0.10, 0.10), 0.975: (-0.09, 0.08), 0.95: (-0.05, 0.04)})
    judged = verdicts.holm([a, b, c], BELOW_0)
    assert [d for _, d in judged] == ["supports", "supports", "undecided"]
    assert [round(i.confidence, 4) for i, _ in judged] == [0.9833, 0.975, 0.95]


def test_holm_stops_at_the_first_step_that_decides_nothing():
    judged = verdicts.holm([fixed(-0.1, 0.1), fixed(-0.2, 0.05)], BELOW_0)
    assert [d for _, d in judged] == ["undecided", "undecided"]
    assert {round(i.confidence, 4) for i, _ in judged} == {0.975}  # judged at 1 - 0.05/2 only


# ---------------------------------------------------------------- outcomes
@pytest.mark.parametrize(
    "intervals, claim, expected",
    [
        ([(-0.3, -0.1), (-0.1, 0.1)], BELOW_0, "holds"),  # one supports a direction, none contradicts
        ([(-0.3, -0.1), (0.1, 0.3)], BELOW_0, "does not hold"),  # a contradiction outweighs a support
        ([(-0.1, 0.1), (-0.2, 0.05)], BELOW_0, "cannot be told apart"),
        ([(0.0, 0.005), (0.001, 0.008)], BOUND_BELOW, "holds"),  # every drop wholly under 0.01
        ([(0.0, 0.005), (0.0, 0.02)], BOUND_BELOW, "cannot be told apart"),  # one bound is not shown
        ([(0.0, 0.005), (0.02, 0.05)], BOUND_BELOW, "does not hold"),
    ],
)
def test_every_outcome_but_not_testable_from_intervals(intervals, claim, expected):
    comparisons = [Comparison(f"c{i}", fixed(lo, hi)) for i, (lo, hi) in enumerate(intervals)]
    assert judge(comparisons, claim).outcome == expected


def test_blocked_comparisons_leave_the_family_and_all_blocked_is_not_testable():
    reason = "the Lite0 R target (d1/10) is at chance"
    blocked = [Comparison("a", None, (reason,)), Comparison("b", None, (reason, "row unfit"))]
    verdict = judge(blocked, BELOW_0)
    assert verdict.outcome == "not testable"
    assert verdict.reasons == (reason, "row unfit")  # distinct reasons, in order
    mixed = judge(blocked + [Comparison("c", fixed(-0.3, -0.1))], BELOW_0)
    assert mixed.outcome == "holds"
    # one testable comparison: Holm's first step is at 95 %, not 1 - 0.05/3
    assert [j.decision for j in mixed.judged] == [None, None, "supports"]
    assert mixed.judged[2].interval.confidence == pytest.approx(0.95)


# ---------------------------------------------------------------- blockers
def test_a_target_whose_clean_auc_reaches_chance_is_not_testable():
    assert verdicts.at_chance(iv(0.56, 0.51, 0.61), "the target") == ()
    (reason,) = verdicts.at_chance(iv(0.53, 0.48, 0.58), "the Lite0 R target")
    assert "at chance" in reason and "0.480 ≤ 0.5" in reason


def test_finding_1_premise_needs_pretraining_to_raise_clean_auc():
    assert verdicts.premise(interval(0.01, 0.09), "Lite0: IN − R clean AUC") == ()
    (reason,) = verdicts.premise(interval(-0.02, 0.06), "Lite0: IN − R clean AUC")
    assert "not above 0" in reason


def test_a_row_is_represented_by_the_ensemble_of_all_its_seeds():
    row = "same-random-d1"
    seeds = [make_surrogate(row, f"s{i}", i, init="random", split="d1") for i in range(3)]
    ensemble = make_surrogate(row, "ens-3", -1, init="random", split="d1", member_ids=("s0", "s1", "s2"))
    partial = make_surrogate(row, "ens-2", -1, init="random", split="d1", member_ids=("s0", "s1"))
    assert verdicts.representative([*seeds, partial, ensemble], row).id == "ens-3"
    assert verdicts.representative(seeds[:1], row).id == "s0"  # a row of one surrogate is that surrogate
    assert verdicts.representative(seeds, row) is None  # several seeds, no ensemble: nothing pre-specified


PGD_ID = "pgd-step0.01-it20"


def test_an_unfit_member_makes_its_ensemble_no_evidence():
    row = "same-random-d1"
    fit = make_surrogate(row, "s0", 0, init="random", split="d1")
    unfit = make_surrogate(row, "s1", 1, init="random", split="d1", fit=False, reasons=("did not learn",))
    ensemble = make_surrogate(row, "ens", -1, init="random", split="d1", member_ids=("s0", "s1"))
    everyone = [fit, unfit, ensemble]
    (reason,) = verdicts.unfit(ensemble, everyone, f"row {row}", PGD_ID)
    assert reason == (
        f"row {row}: 1 of 3 surrogates unfit for {PGD_ID} (s1: clean test AUC 0.600 (lower bound 0.552) below the "
        "floor 0.6: it did not learn the task)"
    )
    assert verdicts.unfit(fit, everyone, "x", PGD_ID) == ()


def _with_whitebox(surrogate, **auc_by_attack):
    """`surrogate` whose white-box AUC per attack id is replaced (and whose audit fitness is failed)."""
    checks = tuple(
        w.model_copy(update={"auc_whitebox": auc_by_attack.get(w.attack_id.split("-")[0], w.auc_whitebox)})
        for w in surrogate.fitness.whitebox
    )
    fitness = surrogate.fitness.model_copy(update={"whitebox": checks, "fit": False, "reasons": ("audit: unfit",)})
    return surrogate.model_copy(update={"fitness": fitness})


def _with_siblings(surrogate, sibling_relative_auc):
    """`surrogate` whose every white-box check records `sibling_relative_auc` (bound 0.97, from the fixture)."""
    checks = tuple(
        w.model_copy(update={"sibling_relative_auc": sibling_relative_auc}) for w in surrogate.fitness.whitebox
    )
    return surrogate.model_copy(update={"fitness": surrogate.fitness.model_copy(update={"whitebox": checks})})


def test_an_attacker_none_of_whose_seeds_moves_a_sibling_is_a_caveat_not_a_blocker():
    row = "same-random-d1"
    seeds = [
        _with_siblings(make_surrogate(row, f"s{i}", i, init="random", split="d1"), a)
        for i, a in enumerate((0.999, 1.002, 0.98))
    ]
    ensemble = make_surrogate(row, "ens", -1, init="random", split="d1", member_ids=("s0", "s1", "s2"))
    everyone = [*seeds, ensemble]
    (caveat,) = verdicts.no_sibling_transfer(ensemble, everyone, f"row {row}", PGD_ID)
    assert caveat == (
        f"row {row}: the {PGD_ID} images of none of its 3 seeds move another seed of the row "
        "(siblings keep 0.98–1.00 of their clean AUC > 0.97)"
    )
    assert verdicts.unfit(ensemble, everyone, f"row {row}", PGD_ID) == ()  # still evidence for a finding
    # one seed whose images bring a sibling to 0.97 of its clean AUC (the bound itself) is enough: no caveat
    moving = [*seeds[:2], _with_siblings(seeds[2], 0.97), ensemble]
    assert verdicts.no_sibling_transfer(ensemble, moving, f"row {row}", PGD_ID) == ()
    # a row of one surrogate has no sibling to move: nothing to say
    alone = _with_siblings(seeds[0], None)
    assert verdicts.no_sibling_transfer(alone, [alone], "x", PGD_ID) == ()


def test_a_verdict_carries_the_caveats_of_judged_comparisons_only():
    caveat, hidden = "row a: no sibling moves", "row b: no sibling moves"
    comparisons = [
        Comparison("a", fixed(-0.3, -0.1), caveats=(caveat,)),
        Comparison("b", None, ("row b unfit",), caveats=(hidden,)),  # not judged: its caveat says nothing
        Comparison("c", fixed(-0.2, -0.1), caveats=(caveat,)),
    ]
    verdict = judge(comparisons, BELOW_0)
    assert verdict.outcome == "holds"
    assert verdict.caveats == (caveat,)
    assert judge(comparisons[1:2], BELOW_0).caveats == ()


def test_fitness_for_a_finding_is_per_attack():
    s = _with_whitebox(make_surrogate("same-random-d1", "s0", 0, init="random", split="d1"), fgsm=0.62)
    (reason,) = verdicts.unfit(s, [s], "row r", "fgsm")
    assert reason == (
        "row r: 1 of 1 surrogates unfit for fgsm (s0: fgsm white-box at ε 0.03 leaves its own AUC at 0.620 > 0.5: "
        "the attack does not break its own model)"
    )
    assert verdicts.unfit(s, [s], "row r", PGD_ID) == ()  # PGD breaks it: it carries the PGD comparisons


def test_a_surrogate_whose_images_move_no_sibling_is_still_an_attacker_for_a_finding():
    """The audit calls it unfit (sibling relative AUC 0.99 > 0.97); a finding about transfer may not assume it."""
    s = make_surrogate("same-random-d1", "s0", 0, init="random", split="d1")
    checks = tuple(w.model_copy(update={"sibling_relative_auc": 0.99, "passed": False}) for w in s.fitness.whitebox)
    s = s.model_copy(update={"fitness": s.fitness.model_copy(update={"whitebox": checks, "fit": False})})
    assert verdicts.unfit(s, [s], "row r", "fgsm") == () and verdicts.unfit(s, [s], "row r", PGD_ID) == ()


def test_an_attack_without_a_white_box_check_is_no_evidence():
    s = make_surrogate("same-random-d1", "s0", 0, init="random", split="d1")
    (reason,) = verdicts.unfit(s, [s], "row r", "mifgsm-x")
    assert reason.endswith("(s0: no white-box check of mifgsm-x recorded)")


# ---------------------------------------------------------------- paired intervals from score arrays
Y = np.array([0, 0, 0, 1, 1, 1])
SEPARATING = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])  # AUC 1 in every resample holding both classes
INVERTED = SEPARATING[::-1].copy()  # AUC 0 in every such resample
TIED = np.full(6, 0.5)  # AUC 0.5 in every such resample (ties count one half)


@pytest.mark.parametrize("groups", [None, np.array(["p0", "p0", "p1", "p2", "p3", "p3"])], ids=["images", "patients"])
def test_a_transfer_that_destroys_a_target_beats_one_that_leaves_it_alone(groups):
    # A: relative AUC 0/1; B: 1/1; so A - B = -1 in every resample: holds, at every confidence Holm asks for
    d = verdicts.relative_difference(Y, groups, Scored(SEPARATING, INVERTED), Scored(SEPARATING, SEPARATING))
    assert (d(0.95).low, d(0.95).high) == (-1.0, -1.0)
    comparisons = [Comparison("Lite0", d), Comparison("MNv2", d)]
    assert judge(comparisons, BELOW_0).outcome == "holds"
    reverse = verdicts.relative_difference(Y, groups, Scored(SEPARATING, SEPARATING), Scored(SEPARATING, INVERTED))
    assert judge([Comparison("Lite0", reverse)], BELOW_0).outcome == "does not hold"


def test_finding_6_is_judged_on_the_interval_of_clean_minus_control_not_its_point():
    # 9 positives, 10 negatives; the control swaps one positive below one negative: AUC 1 - 1/90, so the point
    # of clean - control is 0.011 > 0.01, but resamples without that pair give 0: the interval spans 0.01
    y = np.array([0] * 10 + [1] * 9)
    clean = np.arange(19, dtype=float)
    control = clean.copy()
    control[9], control[10] = clean[10], clean[9]  # the highest negative and the lowest positive trade places
    d = verdicts.auc_difference(y, None, clean, control)
    assert d(0.95).point == pytest.approx(1 / 90)
    assert d(0.95).low < 0.01 < d(0.95).high
    assert judge([Comparison("Lite0 FGSM", d)], BOUND_BELOW).outcome == "cannot be told apart"
    unchanged = verdicts.auc_difference(y, None, clean, clean)  # clean - control = 0 in every resample
    assert judge([Comparison("Lite0 FGSM", unchanged)], BOUND_BELOW).outcome == "holds"
    flipped = verdicts.auc_difference(y, None, clean, -clean)  # control destroys the ranking: d = 1
    assert judge([Comparison("Lite0 FGSM", flipped)], BOUND_BELOW).outcome == "does not hold"


def test_finding_7a_an_attack_whose_fall_the_control_matches_does_not_fall():
    # adversarial AUC falls from 1 (smallest ε) to 0.5 (largest ε) but the control falls exactly as much:
    # adversarial ÷ control is 1 at both ends, d = 0 in every resample, so no direction is shown
    falls = verdicts.relative_difference(Y, None, Scored(TIED, TIED), Scored(SEPARATING, SEPARATING))
    assert (falls(0.95).low, falls(0.95).high) == (0.0, 0.0)
    assert judge([Comparison("Lite0 FGSM", falls)], BELOW_0).outcome == "cannot be told apart"


def test_finding_8_relative_auc_minus_one_and_a_target_at_chance():
    immune = verdicts.relative_difference(Y, None, Scored(SEPARATING, SEPARATING), Scored(SEPARATING, SEPARATING))
    assert judge([Comparison("Lite0 same", immune)], BOUND_ABOVE).outcome == "holds"  # relative AUC 1 everywhere
    moved = verdicts.relative_difference(Y, None, Scored(SEPARATING, INVERTED), Scored(SEPARATING, SEPARATING))
    assert judge([Comparison("Lite0 same", moved)], BOUND_ABOVE).outcome == "does not hold"
    chance = verdicts.at_chance(iv(0.50, 0.50, 0.50), "the Lite0 R target (d1/10)")
    assert judge([Comparison("Lite0 same", None, chance)], BOUND_ABOVE).outcome == "not testable"


# ---------------------------------------------------------------- the document's hand-written part
def test_header_states_no_measured_number():
    """Numbers about results come from the results (a hand-typed range once exceeded its own data)."""
    text = (REPO / "examples" / "reproduce_paper" / "HEADER.md").read_text()
    assert "%" not in text
    decimals = set(re.findall(r"\b\d+\.\d+\b", text))
    assert decimals <= {"0.01", "0.02"}, decimals  # the paper's PGD step and ε only


def test_the_reproduction_runs_the_shipped_scenarios_unchanged_but_for_their_data():
    """Seeds, ensembles and training (plateau stopping, the epoch budget) come from the scenarios, found through
    importlib.resources; only the data section is set per modality."""
    for experiment in EXPERIMENTS:
        path = reproduce.scenario_file(experiment)
        assert path.parent.name == "scenarios"
        shipped = load_scenario(path)
        for modality in MODALITIES.values():
            settings = Settings(image_size=modality.image_size, test_limit=None)
            scenario = reproduce.scenario_for(experiment, modality, settings)
            assert scenario.training == shipped.training
            assert scenario.surrogates == shipped.surrogates and scenario.ensembles == ("seeds",)
            assert scenario.attacks == shipped.attacks and scenario.epsilons_pm1 == shipped.epsilons_pm1
            assert scenario.data.image_size == modality.image_size
            assert scenario.data.positive_labels == modality.positive_labels
            rows = {}
            for row in scenario.surrogate_rows():
                rows.setdefault(row.row_id, []).append(row.seed)
            assert all(len(seeds) >= 3 for seeds in rows.values())


def test_run_info_refuses_to_mix_settings_in_one_folder(tmp_path):
    modality = MODALITIES["retina"]
    (tmp_path / "run_info.json").write_text(json.dumps({"modality": "retina", "settings": {"image_size": 32}}))
    assert reproduce.previous_runs(tmp_path, Settings(image_size=32, test_limit=None)) == {}  # old layout: superseded
    reproduce.write_run_info(tmp_path, modality, Settings(image_size=32, test_limit=None), {})
    assert reproduce.previous_runs(tmp_path, Settings(image_size=32, test_limit=None)) == {}
    with pytest.raises(AuditInputError, match="use the same settings"):
        reproduce.previous_runs(tmp_path, Settings(image_size=64, test_limit=None))


def run_entry(val_auc: float = 0.9, epochs_run: int = 1, cpu: str | None = None) -> RunEntry:
    return reproduce.RunEntry(
        seconds=9564.0,
        finished_at="2026-12-02T21:33:23+00:00",
        machine=reproduce.Machine(device="cpu", torch="2", cuda=None, gpu=None, cpu_threads=2, cpu=cpu),
        target=reproduce.TargetTraining(
            id="t",
            n_train=1,
            n_val=1,
            val_auc=val_auc,
            epochs_run=epochs_run,
            best_epoch=1,
            stop_reason="plateau",
            train_seconds=1.0,
            from_cache=False,
        ),
    )


def test_a_target_trained_again_unlike_the_recorded_one_is_warned_about():
    runs = {"pretraining__t": run_entry()}
    assert reproduce.retrained_target("data_disparity__t", run_entry(), runs) is None  # same training: same model
    assert reproduce.retrained_target("pretraining__t", run_entry(0.8), runs) is None  # a rerun replaces its own entry
    warning = reproduce.retrained_target("data_disparity__t", run_entry(0.8, 3, cpu="AMD EPYC (AVX512)"), runs)
    assert warning == (
        "warning: target t trained here (validation AUC 0.8000, 3 epochs, AMD EPYC (AVX512), 2 threads) differs "
        "from the one pretraining__t recorded (0.9000, 1 epochs, processor not recorded, 2 threads): its cache was "
        "lost and this machine's kernels differ; the document names both (Model identity), or --rerun the runs "
        "that used the other one, on this machine"
    )


def test_rerun_audits_again_every_selected_run_or_only_those_named():
    assert not reproduce.audits_again("pretraining__a", None)  # no --rerun
    assert reproduce.audits_again("pretraining__a", [])  # bare --rerun
    assert reproduce.audits_again("pretraining__a", ["pretraining__a", "small_data__b"])
    assert not reproduce.audits_again("pretraining__c", ["pretraining__a"])


def test_rerun_of_a_run_the_experiments_do_not_make_is_refused_before_anything_runs(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / MODALITIES["retina"].file).write_bytes(b"")
    argv = ["retina", "--data", str(data), "--results", str(tmp_path / "results"), "--only", "small_data"]
    with pytest.raises(SystemExit) as exit_:
        reproduce.main([*argv, "--rerun", "pretraining__mobilenet_v2-random-d1"])
    assert exit_.value.code == 2 and not (tmp_path / "results").exists()
    assert "--rerun pretraining__mobilenet_v2-random-d1: not a run of the selected experiments; choose from " in (
        capsys.readouterr().err
    )


def test_a_resumed_reproduction_skips_only_runs_recorded_with_their_results(tmp_path):
    entry = run_entry()
    runs = {"pretraining__a": entry, "pretraining__b": entry}
    (tmp_path / "pretraining__a").mkdir()
    (tmp_path / "pretraining__a" / "results.json").write_text("{}")
    assert reproduce.recorded(tmp_path, runs, "pretraining__a")
    assert not reproduce.recorded(tmp_path, runs, "pretraining__b")  # in run info, but its results are missing
    assert not reproduce.recorded(tmp_path, {}, "pretraining__a")  # results without a recorded time: audit again


# ---------------------------------------------------------------- end to end on generated images
SYNTHETIC = Modality(
    key="synthetic",
    title="Synthetic blobs (generated, patient-level)",
    file="blobs.npz",
    positive_labels=None,
    negative_labels=None,
    class_names=("n", "p"),
    image_size=16,
    paper_column="Rad",
)
TINY_ROWS = {  # experiment -> the rows it keeps (two seeds each): a tiny_cnn target has no ImageNet weights
    "perturbation_degree": ("d1",),
    "pretraining": ("d1",),
    "data_disparity": ("d1", "d2"),
    "small_data": ("d2",),
}


@pytest.fixture(scope="module")
def reproduction(tmp_path_factory):
    """A reproduction-shaped results folder from real audits of tiny_cnn targets on generated images."""
    root = tmp_path_factory.mktemp("reproduction")
    # large enough that d1/10 (a tenth of d1's patients) still has both classes among its validation patients
    data = write_synthetic_npz(root / SYNTHETIC.file, counts=(1200, 300, 80), patient_ids=True)
    settings = Settings(image_size=16, test_limit=40)
    runs: dict[str, RunEntry] = {}
    for experiment, splits in TINY_ROWS.items():
        shipped = reproduce.scenario_for(experiment, SYNTHETIC, settings)
        scenario = shipped.model_copy(
            update={
                "surrogates": tuple(
                    SurrogateRow(arch="same", init="random", data=s, seed=k) for s in splits for k in (0, 1)
                ),
                "training": shipped.training.model_copy(update={"epochs": 3}),
                "bootstrap": shipped.bootstrap.model_copy(update={"resamples": 100}),
                # lenient, so the verdicts run through Holm on real per-image files, not only through blockers
                "fitness": FitnessSection(min_surrogate_auc=0.0, max_whitebox_auc=1.0, max_sibling_relative_auc=1.5),
            }
        )
        name, entry = reproduce.run_target(
            SYNTHETIC,
            experiment,
            "tiny_cnn",
            "random",
            scenario,
            data,
            work=root / "work",
            cache=root / "cache",
            device="cpu",
            results_root=root / "results",
            command="pytest",
            log=lambda m: None,
        )
        runs[name] = entry
    reproduce.write_run_info(root / "results" / SYNTHETIC.key, SYNTHETIC, settings, runs, why="16 px keeps tests fast")
    return root / "results"


def test_each_run_is_copied_with_the_per_image_files_it_cites(reproduction):
    folder = reproduction / SYNTHETIC.key
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "data_disparity__tiny_cnn-random-d1",
        "perturbation_degree__tiny_cnn-random-d1",
        "pretraining__tiny_cnn-random-d1",
        "run_info.json",
        "small_data__tiny_cnn-random-d1over10",
    ]
    loaded = committed.load(folder, reproduction.parent / SYNTHETIC.file)
    for run in loaded.runs:
        cited = {f.path for f in run.results.per_image}
        assert cited == {str(p.relative_to(run.folder)) for p in (run.folder / "per_image").iterdir()}
        assert run.clean.scores.shape == run.clean.y.shape == (40,)
        with np.load(run.folder / committed.CLEAN_SCORES) as kept:
            assert kept.files == ["scores"]  # the labels and patient ids stay in the data file
        # the audit's own results show test images; the committed copy keeps none (they are copies of the data)
        audited = read_results(reproduction.parent / "work" / run.folder.name / "results.json")
        assert audited.examples and not run.results.examples
    assert loaded.run_info.settings.image_size == 16 and len(loaded.run_info.runs) == 4
    assert {e.target.stop_reason for e in loaded.run_info.runs.values()} <= {"plateau", "budget"}


def test_the_renderer_builds_a_modality_section_from_real_results(reproduction):
    text = tables.render(reproduction, [SYNTHETIC], header="# test\n", data_dir=reproduction.parent)
    section = text[text.index(f"## {SYNTHETIC.title}") :]
    assert (
        f"Settings: 16 px (default {SYNTHETIC.image_size} px), test limit 40; why: 16 px keeps tests fast." in section
    )
    for heading in ("### ε per modality", "### Table 2", "### Table 3", "### Table 4", "### Table 5", "### White-box"):
        assert heading in section
    judged = findings.verdicts(committed.load(reproduction / SYNTHETIC.key, reproduction.parent / SYNTHETIC.file))
    assert set(judged) == {f.key for f in findings.FINDINGS}
    assert all(v.outcome in verdicts.OUTCOMES for v in judged.values())
    # no ImageNet-pretrained target was run: finding 1 cannot be tested, and says why
    assert judged["1"].outcome == "not testable"
    assert any("no run against the tiny_cnn IN target" in r for r in judged["1"].reasons)
    # the control-noise and epsilon findings were judged by Holm on the committed per-image files
    for key in ("6", "7a", "7b", "3"):
        assert all(j.decision is not None for j in judged[key].judged), judged[key]
    for key, v in judged.items():
        assert f"| {key}. " in section and f"**{v.outcome}**" in section
    # the departures section quotes the ensembles' relative AUC of the random-init R/R row of Table 3
    c = committed.load(reproduction / SYNTHETIC.key, reproduction.parent / SYNTHETIC.file)
    ensembles = [
        x.relative_auc.point
        for run in c.runs
        if run.experiment == "pretraining"
        for x in run.results.cells
        if x.row_id == "same-random-d1"
        and len(x.member_ids) > 1
        and x.epsilon_pm1 == 0.02
        and committed.attack_kind(x) in ("fgsm", "pgd")
    ]
    assert sorted(departures.ours_random_init({SYNTHETIC.key: c})[SYNTHETIC.key]) == sorted(ensembles)
    assert f"ε 0.02): {SYNTHETIC.key} {min(ensembles):.0%}–{max(ensembles):.0%}." in text
    clean = [r.results.cells[0].auc_clean.point for r in c.runs if r.experiment == "pretraining"]
    assert clean and departures.ours_random_init_clean({SYNTHETIC.key: c}) == {SYNTHETIC.key: clean}


def test_a_tampered_score_file_is_refused(reproduction, tmp_path):
    copy = tmp_path / SYNTHETIC.key
    shutil.copytree(reproduction / SYNTHETIC.key, copy)
    run_dir = copy / "perturbation_degree__tiny_cnn-random-d1"
    with np.load(run_dir / "per_image" / "clean.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["scores"] = arrays["scores"][::-1].copy()
    np.savez_compressed(run_dir / "per_image" / "clean.npz", **arrays)
    run = next(
        r
        for r in committed.load(copy, reproduction.parent / SYNTHETIC.file).runs
        if r.experiment == "perturbation_degree"
    )
    with pytest.raises(AuditInputError, match="sha256 differs"):
        run.clean


def test_labels_come_only_from_the_data_file_the_run_was_made_from(reproduction, tmp_path):
    folder = reproduction / SYNTHETIC.key
    run = committed.load(folder).runs[0]  # no data file given
    with pytest.raises(AuditInputError, match=r"^None: data file not found; the per-image files in .* hold scores "):
        run.clean
    other = write_synthetic_npz(tmp_path / "other.npz", counts=(1200, 300, 80), patient_ids=True, seed=9)
    with pytest.raises(
        AuditInputError, match=r"other.npz: sha256 [0-9a-f]{12}… differs from the [0-9a-f]{12}… the run in"
    ):
        committed.load(folder, other).runs[0].clean
    # the same file, but results whose data section picks other test images
    copy = tmp_path / "copy"
    shutil.copytree(run.folder, copy / run.name)
    raw = json.loads((copy / run.name / "results.json").read_text())
    raw["scenario"]["data"]["test_limit"] = 30
    (copy / run.name / "results.json").write_text(json.dumps(raw))
    with pytest.raises(AuditInputError, match=r"picks other images than the run recorded \(split ids sha256 differs\)"):
        committed.load(copy, reproduction.parent / SYNTHETIC.file).runs[0].clean


def test_rendering_without_the_data_says_so_in_one_line_and_writes_nothing(reproduction, tmp_path, monkeypatch, capsys):
    shutil.copytree(reproduction / SYNTHETIC.key, tmp_path / "results" / "retina")  # read as retina: its data is absent
    out = tmp_path / "reproduction.md"
    argv = ["tables.py", "--results", str(tmp_path / "results"), "--out", str(out), "--data", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        tables.main()
    assert exit_.value.code == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'retinamnist.npz'}: data file not found;") and "\n" not in err


def _retrain(run_dir, surrogate_id: str, target_sha: str) -> None:
    """Rewrite a run's results as if its target and one surrogate had been trained again on another machine."""
    results = read_results(run_dir / "results.json")
    surrogates = tuple(
        s.model_copy(update={"val_auc": s.val_auc / 2, "epochs_run": s.epochs_run + 1}) if s.id == surrogate_id else s
        for s in results.surrogates
    )
    target = results.target.model_copy(update={"sha256": target_sha})
    write_results(results.model_copy(update={"surrogates": surrogates, "target": target}), run_dir / "results.json")


def test_a_model_id_trained_twice_is_named_with_the_runs_of_each_version(reproduction, tmp_path):
    loaded = committed.load(reproduction / SYNTHETIC.key)
    assert committed.retrained(loaded) == []
    assert tables.identity_paragraph(loaded)[0].startswith("**Model identity**: every target and surrogate id names")
    # pretraining and perturbation_degree audit the same tiny_cnn R (d1) target with the same d1 seed-0 surrogate
    copy = tmp_path / SYNTHETIC.key
    shutil.copytree(reproduction / SYNTHETIC.key, copy)
    shared = "tiny_cnn-random-d1-s0"
    surrogate = next(s.id for s in loaded.runs[0].results.surrogates if s.id.startswith(shared))
    _retrain(copy / "pretraining__tiny_cnn-random-d1", surrogate, "0" * 64)
    split = committed.retrained(committed.load(copy))
    assert [(r.kind, r.id) for r in split] == [("target", "tiny_cnn-random-d1"), ("surrogate", surrogate)]
    assert [v.runs for v in split[0].versions] == [
        ("data_disparity__tiny_cnn-random-d1", "perturbation_degree__tiny_cnn-random-d1"),
        ("pretraining__tiny_cnn-random-d1",),
    ]
    text = tables.identity_paragraph(committed.load(copy))[0]
    assert text.startswith("**Model identity: some ids name two trained models.**")
    assert f"1 surrogate ids ({surrogate}), one version in each of: " in text
    assert "; pretraining vs tiny_cnn R (d1)." in text
    # the training summary counts the retrained surrogate once per trained model
    assert tables.training_section(committed.load(copy))[0].startswith(
        f"**Surrogates**: {int(tables.training_section(loaded)[0].split()[1]) + 1} trained"
    )


COMMITTED = REPO / "docs" / "reproduction"
SCORE_ARRAYS = {"clean.npz": ["scores"]}  # any other per-image file: one cell's target scores
CELL_ARRAYS = ["adversarial_scores", "control_scores"]


def test_committed_per_image_files_hold_scores_only():
    """The data rule: no committed file holds labels, patient ids or images of the data, only float scores."""
    files = sorted(COMMITTED.glob("*/*/per_image/*.npz"))
    assert len(files) > 100  # the committed reproduction, not an empty glob
    for path in files:
        with np.load(path, allow_pickle=False) as arrays:  # an object array (pickled ids) would raise here
            assert sorted(arrays.files) == SCORE_ARRAYS.get(path.name, CELL_ARRAYS), path
            assert all(arrays[k].dtype.kind == "f" and arrays[k].ndim == 1 for k in arrays.files), path


@pytest.mark.parametrize("key", list(MODALITIES))
def test_committed_runs_find_their_test_labels_in_the_data_file(key):
    loaded = committed.load(COMMITTED / key)
    if loaded.run_info is None:
        pytest.skip(f"docs/reproduction/{key}: not re-run with the new protocol yet")
    runs = committed.load(COMMITTED / key, data_file(MODALITIES[key].file)).runs
    assert {r.name for r in runs} == set(loaded.run_info.runs)  # every recorded run is committed, and no other
    for run in runs:
        clean = run.clean
        assert len(clean.y) == run.results.data.test_size and int(clean.y.sum()) == run.results.data.test_positives
        committed.same_images(runs[0], run)


def test_a_modality_with_only_old_protocol_results_says_it_was_not_re_run(tmp_path):
    folder = tmp_path / "retina"
    folder.mkdir()
    (folder / "pretraining__efficientnet_lite0-random-d1.json").write_text(json.dumps({"schema_version": "1.0"}))
    text = tables.render(tmp_path, [MODALITIES["retina"]], header="", data_dir=tmp_path)  # no data needed
    assert "**Not re-run with the new protocol.**" in text
    assert "1 results files in `docs/reproduction/retina/` are results schema 1.0" in text
    assert "| 1. Pre-trained pairs transfer more when pre-training helps clean AUC | not re-run |" in text


# ---------------------------------------------------------------- departures from the paper
def contradicted(*keys: str) -> dict[str, verdicts.Verdict]:
    """A modality's verdicts where the findings named do not hold and every other finding holds."""
    return {f.key: verdicts.Verdict("does not hold" if f.key in keys else "holds", (), ()) for f in findings.FINDINGS}


def test_a_contradicted_finding_5_is_explained_from_the_architecture_study_numbers():
    study = json.loads(departures.STUDY.read_text())
    text = "\n".join(departures.section({"kermany": contradicted("5"), "retina": None}, {}))
    assert "**Finding 5** does not hold on kermany. For a random-init target" in text
    for stage in departures.STUDY_STAGES:  # every drop quoted is the study's own, at its largest epsilon
        cells = [c for c in study[stage]["cells"] if c["bn"] == "eval"]
        epsilon = max(c["epsilon_pm1"] for c in cells)
        (rn_rn,) = [
            c for c in cells if (c["surrogate"], c["target"], c["epsilon_pm1"]) == ("resnet18", "resnet18", epsilon)
        ]
        d = rn_rn["adversarial_specific_drop"]
        assert f"{d['point']:.3f} ({d['low']:.3f}, {d['high']:.3f})" in text
    assert "With ResNet-18 on both sides the matched pair transfers more, as the paper says" in text
    assert "Finding 1" not in text  # findings that hold get no paragraph


def test_a_study_that_does_not_separate_family_from_match_leaves_the_cause_open(tmp_path):
    study = json.loads(departures.STUDY.read_text())
    for stage in departures.STUDY_STAGES:  # the ResNet-18 target moved less by its twin than by MobileNetV2
        for c in study[stage]["cells"]:
            if (c["surrogate"], c["target"]) == ("resnet18", "resnet18"):
                c["adversarial_specific_drop"] = {"point": 0.0, "low": -0.001, "high": 0.001}
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    text = "\n".join(departures.section({"kermany": contradicted("5")}, {}, path))
    assert "so the matched pair transfers less" in text
    assert "The study does not separate the attacker's family from the match, so the cause is still open." in text
    assert "as the paper says" not in text


def test_a_contradiction_no_experiment_has_tested_says_so_and_none_says_none():
    text = "\n".join(departures.section({"retina": contradicted("2", "6")}, {}))
    assert "**Finding 2** does not hold on retina. No experiment has tested why yet." in text
    assert "**Finding 6** does not hold on retina. No experiment has tested why yet." in text
    assert departures.section({"retina": contradicted(), "derma": None}, {})[4] == (
        "No finding is contradicted on any modality re-run so far."
    )


def test_the_epsilon_page_shows_each_image_full_size_and_zoomed_at_every_epsilon():
    import epsilon_examples

    rng = np.random.default_rng(0)
    originals = rng.uniform(-1, 1, size=(2, 1, 16, 16)).astype(np.float32)
    adversarial = {eps: np.clip(originals + eps, -1, 1) for eps in (0.01, 0.03)}
    sheet = epsilon_examples.page(originals, adversarial, "title")
    side = epsilon_examples.DISPLAY_PX // 16 * 16  # 16 px enlarged by a whole factor
    gap = epsilon_examples.GAP_PX
    assert sheet.width == 3 * (2 * side + 3 * gap)  # original + two epsilons, each full size and cropped
    # the first image's panel is its pixels repeated, never interpolated
    top = epsilon_examples.TITLE_PX
    shown = np.asarray(sheet.convert("L"))[top : top + side, gap : gap + side]
    expected = np.kron(epsilon_examples.grey_from_pm1(originals[0, 0]), np.ones((side // 16, side // 16), np.uint8))
    assert np.array_equal(shown, expected)


def test_first_below_is_the_smallest_epsilon_under_the_bound():
    import epsilon_examples

    curve = ((0.03, 0.79), (0.01, 0.95), (0.02, 0.85), (0.04, 0.81))  # not monotone past the crossing
    assert epsilon_examples.first_below(curve, 0.8) == 0.03
    assert epsilon_examples.first_below(curve, 0.5) is None


def test_the_ssim_curve_says_where_the_bound_would_bind(tmp_path):
    from protocol import SSIM_CURVE, SsimCurve, SsimCurves

    settings = Settings(image_size=32, test_limit=None)
    curves = SsimCurves(
        modality="retina",
        settings=settings,
        curves=(
            SsimCurve(
                target="efficientnet_lite0-random-d1",
                surrogate_id="s0",
                attack="fgsm",
                test_images=400,
                bound=0.8,
                curve=((0.01, 0.99), (0.02, 0.97), (0.03, 0.9), (0.04, 0.79)),
                first_below_bound=0.04,
            ),
            SsimCurve(
                target="mobilenet_v2-random-d1",
                surrogate_id="s0",
                attack="fgsm",
                test_images=400,
                bound=0.8,
                curve=((0.01, 0.99), (0.02, 0.98)),
                first_below_bound=None,
            ),
        ),
    )
    (tmp_path / SSIM_CURVE).write_text(curves.model_dump_json())
    lines = tables.ssim_curve_lines(committed.load(tmp_path))
    assert (
        "- efficientnet_lite0-random-d1 (400 test images): mean SSIM first below 0.8 at **ε 0.04** "
        "(ε 0.02: 0.970, ε 0.04: 0.790)." in lines
    )
    assert (
        "- mobilenet_v2-random-d1 (400 test images): mean SSIM never below 0.8 up to ε 0.02 (ε 0.02: 0.980)." in lines
    )


@pytest.mark.parametrize(
    "low, high, beyond, below",
    [(0.001, 0.05, True, False), (-0.01, 0.05, False, False), (-0.05, -0.001, False, True), (0.0, 0.0, False, False)],
)
def test_an_attack_beats_its_control_only_when_the_whole_drop_interval_is_above_zero(low, high, beyond, below):
    t = departures.ControlTest("Lite0 R target (d1), PGD, ε 0.02", interval(low, high))
    assert (departures.beyond_control([t]) == [t], departures.below_control([t]) == [t]) == (beyond, below)


def judged_7b(label: str) -> verdicts.Verdict:
    """Finding 7b contradicted by one comparison with the given label."""
    j = verdicts.Judged(label, interval(0.001, 0.03, 0.975), "contradicts", ())
    return verdicts.Verdict("does not hold", (j,), ())


def test_a_contradiction_on_random_init_targets_is_tested_against_the_control_of_every_sweep_cell(reproduction):
    c = committed.load(reproduction / SYNTHETIC.key, reproduction.parent / SYNTHETIC.file)
    (sweep,) = [r for r in c.runs if r.experiment == "perturbation_degree"]
    grid = sorted({cell.epsilon_pm1 for cell in sweep.results.cells})
    tests = departures.control_tests([sweep], "same-random-d1")
    assert len(tests) == len(findings.PAPER_ATTACKS) * len(grid)
    # each test is the paired interval of control minus adversarial AUC, recomputed here from the per-image files
    ensemble = verdicts.representative(sweep.results.surrogates, "same-random-d1")
    (cell,) = sweep.cells(attacker=ensemble.id, kind="pgd", eps=grid[-1])
    adversarial, control = sweep.scores(cell)
    expected = verdicts.auc_difference(sweep.clean.y, sweep.bootstrap_groups, control, adversarial)(0.95)
    assert tests[-1].where == f"tiny_cnn R target (d1), PGD, ε {grid[-1]:g}" and tests[-1].drop == expected

    verdict = {**contradicted(), "7b": judged_7b("tiny_cnn R target (d1): FGSM − PGD")}
    text = "\n".join(departures.section({SYNTHETIC.key: verdict}, {SYNTHETIC.key: c}))
    assert f"**Finding 7b** does not hold on {SYNTHETIC.key}. On {SYNTHETIC.key} the contradicting comparisons" in text
    assert f"{len(tests)} paired tests of control − adversarial AUC: 1 target," in text
    moved = departures.beyond_control(tests)
    if moved:  # whichever the tiny models did, the paragraph must say it with the count
        assert f"its images lower AUC beyond the control in {len(moved)} (largest" in text
        assert "no experiment has tested why yet" in text
    else:
        assert "its images never lower AUC beyond the control" in text
        assert "FGSM against PGD then compares two perturbations neither of which is an attack" in text


def test_a_contradiction_not_against_a_random_init_target_of_the_sweep_is_left_open(reproduction):
    c = committed.load(reproduction / SYNTHETIC.key, reproduction.parent / SYNTHETIC.file)
    verdict = {**contradicted(), "7b": judged_7b("tiny_cnn IN target (d1): FGSM − PGD")}
    text = "\n".join(departures.section({SYNTHETIC.key: verdict}, {SYNTHETIC.key: c}))
    assert (
        f"On {SYNTHETIC.key} a contradicting comparison is not against a random-init target of the ε sweep; "
        "no experiment has tested why yet."
    ) in text
    assert "paired tests" not in text
