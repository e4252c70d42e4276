"""The reproduction's run driver (`reproduction.reproduce`) on the new medaudit API, and the document rendered from
what it writes.

The end-to-end fixture runs a reproduction-shaped set of audits of tiny_cnn targets on generated images through
`reproduce.run_target` (real training with `medaudit.attackers.target_training`, real attacks, real `medaudit.audit.run.run_audit`, schema
3.0), with the fixed `different` rule written into the scenario, and renders it with `document.render`, so neither
the driver nor the renderer can drift from the package unnoticed.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from medaudit.attacks import APGD, FGSM, PGD, Square
from medaudit.core.errors import AuditInputError
from medaudit.records.results import read_results
from medaudit.scenario.threat_model import SurrogateGrid, SurrogateRow, load_scenario
from reproduction import document, protocol, reproduce, target_seeds
from reproduction.findings import NOT_FIXED, assess_modality
from reproduction.protocol import DIFFERENT, EXPERIMENTS, MODALITIES, Modality, RunEntry, Settings
from reproduction.runs import CLEAN_SCORES, load
from tests.conftest import write_synthetic_npz


# ---------------------------------------------------------------- the scenarios it runs
@pytest.mark.parametrize("experiment", list(EXPERIMENTS))
def test_the_shipped_scenarios_run_unchanged_but_for_their_data_and_the_fixed_different(experiment):
    shipped = load_scenario(reproduce.scenario_file(experiment))
    for arch, _ in EXPERIMENTS[experiment]:
        for modality in MODALITIES.values():
            settings = Settings(image_size=modality.image_size, test_limit=None)
            scenario = reproduce.scenario_for(experiment, modality, settings, DIFFERENT[arch])
            assert scenario.training == shipped.training and scenario.attacks == shipped.attacks
            assert scenario.epsilons_pm1 == shipped.epsilons_pm1 and scenario.ensembles == shipped.ensembles
            assert scenario.data.positive_labels == modality.positive_labels
            archs = {r.arch for r in scenario.surrogate_rows()}
            assert "different" not in archs
            if any(r.arch == "different" for r in shipped.surrogate_rows()):
                assert archs == {"same", DIFFERENT[arch]}  # each target's different is the other target
            seeds = {}
            for row in scenario.surrogate_rows():
                seeds.setdefault(row.row_id, []).append(row.seed)
            assert all(len(s) >= 3 for s in seeds.values())


def test_the_fixed_rule_is_one_mapping_each_targets_architecture_to_the_other():
    assert DIFFERENT == {"efficientnet_lite0": "mobilenet_v2", "mobilenet_v2": "efficientnet_lite0"}
    assert set(DIFFERENT) == set(protocol.ARCHS)


def test_dry_run_prints_each_runs_rows_and_trains_nothing(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / MODALITIES["kermany"].file).write_bytes(b"")
    argv = ["kermany", "--data", str(data), "--results", str(tmp_path / "out"), "--only", "data_disparity"]
    reproduce.main([*argv, "--image-size", "64", "--test-limit", "400", "--dry-run"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("data_disparity__efficientnet_lite0-random-d1: 6 rows (efficientnet_lite0 random d1;")
    assert "mobilenet_v2 random d1" in out[0] and "efficientnet_lite0 random d1" in out[1]
    assert not (tmp_path / "out").exists()


def test_rerun_of_a_run_the_experiments_do_not_make_is_refused_before_anything_runs(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / MODALITIES["retina"].file).write_bytes(b"")
    argv = ["retina", "--data", str(data), "--results", str(tmp_path / "results"), "--only", "small_data"]
    with pytest.raises(SystemExit) as exit_:
        reproduce.main([*argv, "--rerun", "pretraining__mobilenet_v2-random-d1"])
    assert exit_.value.code == 2 and not (tmp_path / "results").exists()
    assert (
        "--rerun pretraining__mobilenet_v2-random-d1: not a run of the selected experiments" in capsys.readouterr().err
    )


def test_run_info_refuses_to_mix_settings_in_one_folder(tmp_path):
    modality = MODALITIES["retina"]
    (tmp_path / "run_info.json").write_text(json.dumps({"modality": "retina", "settings": {"image_size": 32}}))
    assert reproduce.previous_runs(tmp_path, Settings(image_size=32, test_limit=None)) == {}  # first protocol's
    reproduce.write_run_info(tmp_path, modality, Settings(image_size=32, test_limit=None), {})
    with pytest.raises(AuditInputError, match="use the same settings"):
        reproduce.previous_runs(tmp_path, Settings(image_size=64, test_limit=None))


def run_entry(val_auc: float = 0.9, epochs_run: int = 1, cpu: str | None = None) -> RunEntry:
    return RunEntry(
        seconds=9564.0,
        finished_at="2026-12-02T21:33:23+00:00",
        machine=protocol.Machine(device="cpu", torch="2", cuda=None, gpu=None, cpu_threads=2, cpu=cpu),
        target=protocol.TargetTraining(
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
    assert reproduce.retrained_target("data_disparity__t", run_entry(), runs) is None
    assert reproduce.retrained_target("pretraining__t", run_entry(0.8), runs) is None  # a rerun replaces its entry
    warning = reproduce.retrained_target("data_disparity__t", run_entry(0.8, 3, cpu="AMD EPYC (AVX512)"), runs)
    assert warning.startswith("warning: target t trained here (validation AUC 0.8000, 3 epochs, AMD EPYC (AVX512)")


def test_rerun_and_resume_choose_what_is_audited_again(tmp_path):
    assert not reproduce.audits_again("pretraining__a", None)
    assert reproduce.audits_again("pretraining__a", [])
    assert not reproduce.audits_again("pretraining__c", ["pretraining__a"])
    runs = {"pretraining__a": run_entry(), "pretraining__b": run_entry()}
    (tmp_path / "pretraining__a").mkdir()
    (tmp_path / "pretraining__a" / "results.json").write_text("{}")
    assert reproduce.recorded(tmp_path, runs, "pretraining__a") and not reproduce.recorded(
        tmp_path, runs, "pretraining__b"
    )


# ---------------------------------------------------------------- end to end on generated images
SYNTHETIC = Modality(
    "synthetic", "Synthetic blobs (generated, patient-level)", "blobs.npz", None, None, ("n", "p"), 16, "Rad"
)
PAPER = (FGSM(name="fgsm"), PGD(name="pgd", step_pm1=0.01, iterations=20))  # the paper's attacks, as findings read them
ROWS = {  # experiment -> (arch, split, seeds) of its rows; `tiny_cnn` stands for the fixed rule's `different`
    "perturbation_degree": (("same", "d1", (0, 1)),),
    "pretraining": (("same", "d1", (0, 1)),),
    "data_disparity": (("same", "d1", (0, 1)), ("same", "d2", (0, 1)), ("tiny_cnn", "d1", (2, 3))),
    "small_data": (("same", "d2", (0, 1)),),
}


@pytest.fixture(scope="module")
def reproduction(tmp_path_factory):
    """A reproduction-shaped results folder from real audits of tiny_cnn targets on generated images; data_disparity
    runs as the shipped scenario does (`auto` ε grid, white-box and query tiers), the others on the paper's grid."""
    root = tmp_path_factory.mktemp("reproduction")
    # large enough that d1/10 still has both classes among its validation patients
    data = write_synthetic_npz(root / SYNTHETIC.file, counts=(1200, 300, 80), patient_ids=True)
    settings = Settings(image_size=16, test_limit=40)
    runs: dict[str, RunEntry] = {}
    for experiment, rows in ROWS.items():
        shipped = reproduce.scenario_for(experiment, SYNTHETIC, settings, "tiny_cnn")
        auto = experiment == "data_disparity"
        scenario = shipped.model_copy(
            update={
                "surrogates": tuple(
                    SurrogateRow(arch=a, init="random", data=s, seed=k) for a, s, seeds in rows for k in seeds
                ),
                "training": shipped.training.model_copy(update={"epochs": 3, "min_steps_before_plateau": 0}),
                "bootstrap": shipped.bootstrap.model_copy(update={"resamples": 100}),
                "attacks": PAPER
                + (
                    (APGD(name="apgd", restarts=1, images=20), Square(name="square", queries_per_image=20, images=20))
                    if auto
                    else ()
                ),
                "epsilons_pm1": "auto" if auto else (0.01, 0.02, 0.03),
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
            results_folder=root / "results" / SYNTHETIC.key,
            command="pytest",
            log=lambda m: None,
        )
        runs[name] = entry
    reproduce.write_run_info(root / "results" / SYNTHETIC.key, SYNTHETIC, settings, runs, why="16 px keeps tests fast")
    return root / "results"


@pytest.mark.slow
def test_each_run_is_copied_with_the_per_image_files_it_cites_and_scores_only(reproduction):
    folder = reproduction / SYNTHETIC.key
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            *(f"{e}__tiny_cnn-random-d1" for e in ROWS if e != "small_data"),
            "small_data__tiny_cnn-random-d1over10",
            "run_info.json",
        ]
    )
    loaded = load(folder, reproduction.parent / SYNTHETIC.file)
    for run in loaded.runs:
        assert run.schema == "3.3"
        cited = {f.path for f in run.record.per_image}
        assert cited == {str(p.relative_to(run.folder)) for p in (run.folder / "per_image").iterdir()}
        assert run.clean.scores.shape == run.clean.y.shape == (40,)
        with np.load(run.folder / CLEAN_SCORES) as kept:
            assert kept.files == ["scores"]  # the labels and patient ids stay in the data file
        audited = read_results(reproduction.parent / "work" / run.folder.name / "results.json")
        assert audited.examples and not read_results(run.folder / "results.json").examples  # no test images kept
    assert loaded.run_info.settings.image_size == 16 and len(loaded.run_info.runs) == 4


@pytest.mark.slow
def test_the_fixed_rules_row_stands_for_different_in_the_findings(reproduction, monkeypatch):
    monkeypatch.setitem(DIFFERENT, "tiny_cnn", "tiny_cnn")
    c = load(reproduction / SYNTHETIC.key, reproduction.parent / SYNTHETIC.file)
    run = c.run("data_disparity", "tiny_cnn", "random")
    assert {run.row(x.row_id) for x in run.cells()} == {"same-random-d1", "same-random-d2", "different-random-d1"}
    assert run.fixed_different("different-random-d1")
    five = assess_modality(c)["5"]
    assert all(NOT_FIXED not in j.blockers for j in five.judged)
    assert {j.status for j in five.judged} <= {"judged", "no transfer"}  # testable under the fixed rule
    monkeypatch.setitem(DIFFERENT, "tiny_cnn", "resnet18")  # the same row is then not the rule's architecture
    assert all(NOT_FIXED in j.blockers for j in assess_modality(c)["5"].judged)


@pytest.mark.slow
def test_the_document_renders_from_real_runs(reproduction, tmp_path):
    main, extra = document.render(
        reproduction, [SYNTHETIC], reproduction.parent, header="# test\n", data_size_paths=[tmp_path / "absent.json"]
    )
    judged = assess_modality(load(reproduction / SYNTHETIC.key, reproduction.parent / SYNTHETIC.file))
    assert judged["1"].outcome == "not testable" and "run absent" in judged["1"].reasons  # no IN target was run
    assert all(j.status != "not testable" for j in judged["6"].judged)  # the control is judged as it stands
    assert "| 6. Control noise barely lowers AUC (at most 0.01 below clean) | **" in main
    assert "Per tier over the 4 audits" in main and "| transfer (gated) | " in main  # the schema 3.x runs
    assert "| synthetic, data_disparity vs tiny_cnn R (d1) | transfer (gated) | " in extra  # per audit, appendix
    assert "### synthetic, data_disparity vs tiny_cnn R (d1)" in extra  # its rows' breaking ε
    assert "- transfer (synthetic data_disparity vs tiny_cnn R (d1)" in extra  # its tier's statement names it
    assert "has not been committed yet" in main
    assert "## synthetic: Synthetic blobs" in extra and "### Table 2: ε sweep" in extra
    assert "why: 16 px keeps tests fast" in " ".join(extra.split())  # prose is wrapped


def test_the_seed_check_audits_only_what_finding_2_compares():
    settings = Settings(image_size=32, test_limit=None)
    shipped = reproduce.scenario_for("pretraining", MODALITIES["pneumonia"], settings, DIFFERENT["mobilenet_v2"])
    cut = target_seeds.cut(shipped)
    assert {(r.arch, r.init, r.data) for r in cut.surrogate_rows()} == {
        ("same", "imagenet", "d1"),
        ("same", "random", "d1"),
    }
    assert {r.seed for r in cut.surrogate_rows()} == {r.seed for r in shipped.surrogate_rows()}
    assert cut.attacks == tuple(a for a in shipped.attacks if a.name in ("fgsm", "pgd"))  # as shipped, no bounds
    assert cut.training == shipped.training and cut.epsilons_pm1 == shipped.epsilons_pm1


@pytest.mark.slow
def test_a_target_from_another_seed_is_trained_from_it_and_kept_apart(reproduction):
    data = reproduction.parent / SYNTHETIC.file
    shipped = reproduce.scenario_for("pretraining", SYNTHETIC, Settings(image_size=16, test_limit=40), "tiny_cnn")
    scenario = target_seeds.cut(shipped).model_copy(
        update={
            "surrogates": SurrogateGrid(arch=("same",), init=("random",), data=("d1",), seed=(0, 1)),
            "training": shipped.training.model_copy(update={"epochs": 3, "min_steps_before_plateau": 0}),
            "bootstrap": shipped.bootstrap.model_copy(update={"resamples": 100}),
            "epsilons_pm1": (0.01, 0.02, 0.03),
        }
    )
    folder = reproduction.parent / "seeds" / SYNTHETIC.key
    name, entry = reproduce.run_target(
        SYNTHETIC,
        "pretraining",
        "tiny_cnn",
        "random",
        scenario,
        data,
        work=reproduction.parent / "work-seeds",
        cache=reproduction.parent / "cache",
        device="cpu",
        results_folder=folder / target_seeds.FOLDER,
        command="pytest",
        seed=1001,
        log=lambda m: None,
    )
    assert name == "pretraining__tiny_cnn-random-d1-s1001" and "-s1001-" in entry.target.id
    with pytest.raises(AuditInputError) as refused:
        target_seeds.checks(folder, data)  # no run info beside the run
    assert str(refused.value) == (
        f"{folder / target_seeds.FOLDER / 'run_info.json'}: missing, or it lists other runs than the folder holds"
    )
    settings = Settings(image_size=16, test_limit=40)
    reproduce.write_run_info(folder / target_seeds.FOLDER, SYNTHETIC, settings, {name: entry})
    default = load(reproduction / SYNTHETIC.key, data).run("pretraining", "tiny_cnn", "random")
    [seeded] = load(folder / target_seeds.FOLDER, data).runs
    assert seeded.record.target.sha256 != default.record.target.sha256  # other weights, same images and labels
    assert np.array_equal(seeded.clean.y, default.clean.y)
    assert load(folder, data).runs == ()  # the modality's own findings never read it
    [check] = target_seeds.checks(folder, data)
    assert (check.arch, check.init, check.seeds) == ("tiny_cnn", "random", (1001,))
    assert [c.label for c in check.comparisons] == [
        "tiny_cnn R, FGSM: R − IN, seed 1001",
        "tiny_cnn R, PGD: R − IN, seed 1001",
    ]
    # tiny_cnn has no ImageNet weights, so its IN row is absent and finding 2 cannot be tested on it
    assert [c.blockers[-1] for c in check.comparisons] == [
        "no same-imagenet-d1 fgsm cell",
        "no same-imagenet-d1 pgd cell",
    ]
    assert check.assessment.outcome == "not testable"
    assert target_seeds.checks(folder / "absent", data) == []


@pytest.mark.slow
def test_a_tampered_score_file_is_refused(reproduction, tmp_path):
    copy = tmp_path / SYNTHETIC.key
    shutil.copytree(reproduction / SYNTHETIC.key, copy)
    run_dir = copy / "perturbation_degree__tiny_cnn-random-d1"
    with np.load(run_dir / CLEAN_SCORES) as data:
        scores = data["scores"][::-1].copy()
    np.savez_compressed(run_dir / CLEAN_SCORES, scores=scores)
    run = next(
        r for r in load(copy, reproduction.parent / SYNTHETIC.file).runs if r.experiment == "perturbation_degree"
    )
    with pytest.raises(AuditInputError, match="sha256 differs"):
        run.clean


def test_the_grid_of_a_shipped_scenario_keeps_its_seeds():
    """The fixture's rows replace the grid; the shipped grid itself is a cartesian product with three seeds."""
    shipped = load_scenario(reproduce.scenario_file("data_disparity"))
    assert isinstance(shipped.surrogates, SurrogateGrid) and shipped.surrogates.seed == (0, 1, 2)
