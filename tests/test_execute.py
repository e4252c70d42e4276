"""Executors run the same job functions: every enrolled executor gives the local executor's cell records
bit for bit; an interrupted run resumes without recomputing what it finished."""

from __future__ import annotations

import json

import pytest

from medaudit.engine import RunOptions, run_audit
from medaudit.errors import AuditInputError
from medaudit.execute import EXECUTORS
from medaudit.results import read_results
from medaudit.scenario import load_scenario
from tests.conftest import tiny_target, write_synthetic_npz

SCENARIO = """
name: executors
data: {{source: {data}, test_limit: 40}}
surrogates:
  arch: [tiny_cnn]
  data: [d2]
  seed: [0, 1]
ensembles: [seeds]
training: {{epochs: 2, batch_size: 32}}
attacks:
  - name: fgsm
  - {{name: pgd, iterations: 3}}
epsilons_pm1: [0.02, 0.05]
perceptibility: {{min_mean_ssim: 0.5}}
bootstrap: {{resamples: 100}}
gate: {{min_relative_auc: 0.5}}
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("executors")
    data = write_synthetic_npz(root / "blobs.npz", counts=(240, 60, 80))
    model = tiny_target(root / "target.onnx")
    path = root / "scenario.yaml"
    path.write_text(SCENARIO.format(data=data))
    return root, path, model


def _run(
    inputs,
    name: str,
    executor: str = "local",
    resume: bool = False,
    progress=None,
    cache: str | None = None,
    target=None,
):
    root, path, model = inputs
    model = target or model
    options = RunOptions(
        out_dir=root / f"out-{name}", cache_dir=root / f"cache-{cache or name}", executor=executor, resume=resume
    )
    return run_audit(
        load_scenario(path),
        scenario_path=path,
        target_path=model,
        data_source=None,
        options=options,
        log=lambda m: None,
        progress=progress,
    )


@pytest.fixture(scope="module")
def local_run(inputs):
    return _run(inputs, "local")


@pytest.mark.parametrize("executor", list(EXECUTORS))
def test_every_executor_gives_the_local_records_bit_for_bit(inputs, local_run, executor):
    results = _run(inputs, f"fresh-{executor}", executor=executor)
    assert results.environment.executor == executor
    assert [c.model_dump_json() for c in results.cells] == [c.model_dump_json() for c in local_run.cells]
    assert [s.test_auc for s in results.surrogates] == [s.test_auc for s in local_run.surrogates]
    assert results.execution.cell_jobs_computed == len(results.cells) // 2  # a fresh cache: all computed


def test_the_run_covers_seeds_and_their_ensemble(local_run):
    attackers = {c.surrogate_id for c in local_run.cells}
    assert len(attackers) == 3 and sum(a.startswith("ens-") for a in attackers) == 1
    ensemble = next(s for s in local_run.surrogates if s.id.startswith("ens-"))
    assert len(ensemble.member_ids) == 2 and ensemble.row_id == "tiny_cnn-random-d2"
    assert {s.n_surrogates for s in local_run.seed_spread} == {2}  # seeds only; the ensemble stands apart
    assert len(local_run.per_image) == 1 + len(local_run.cells)


ATTACKER_FIELDS = ("surrogate_auc_clean", "surrogate_auc_whitebox", "sibling_relative_auc")


def test_a_second_target_reuses_the_attackers_checks_without_loading_a_surrogate(inputs, local_run, monkeypatch):
    from medaudit import execute

    other = tiny_target(inputs[0] / "other.onnx", seed=5)
    fresh = _run(inputs, "other-fresh", target=other)  # its own cache: every check measured for this target
    cache = inputs[0] / "cache-local"
    entries = sorted(p.name for p in (cache / "attacker").iterdir())
    assert len(entries) == len(local_run.cells) // 2  # one per cell job (attacker x attack)

    def no_surrogate(*args):
        raise AssertionError("a cell loaded a surrogate although its images and checks are cached")

    monkeypatch.setattr(execute, "_attacker", no_surrogate)
    shared = _run(inputs, "other-shared", target=other, cache="local")
    assert shared.execution.cell_jobs_computed == len(shared.cells) // 2  # a new target: its cells are new
    assert sorted(p.name for p in (cache / "attacker").iterdir()) == entries
    assert [c.model_dump_json() for c in shared.cells] == [c.model_dump_json() for c in fresh.cells]
    for mine, first in zip(shared.cells, local_run.cells, strict=True):
        assert [getattr(mine, f) for f in ATTACKER_FIELDS] == [getattr(first, f) for f in ATTACKER_FIELDS]
    assert [c.auc_clean.point for c in shared.cells] != [c.auc_clean.point for c in local_run.cells]


class Interrupted(Exception):
    pass


def test_an_interrupted_run_resumes_and_recomputes_nothing_it_finished(inputs):
    def stop_after_two_cell_jobs(phase, done, total):
        if phase == "cells" and done == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        _run(inputs, "resume", progress=stop_after_two_cell_jobs)
    root = inputs[0]
    assert read_results(root / "out-resume" / "results.json").status == "running"
    resumed = _run(inputs, "resume", resume=True)
    assert resumed.status == "complete"
    assert resumed.execution.model_dump() == {
        "surrogates_trained": 0,
        "surrogates_cached": 2,
        "cell_jobs_computed": 4,
        "cell_jobs_cached": 2,
    }
    again = _run(inputs, "resume", resume=True)
    assert (again.execution.cell_jobs_computed, again.execution.surrogates_trained) == (0, 0)
    assert [c.model_dump_json() for c in again.cells] == [c.model_dump_json() for c in resumed.cells]


def test_resume_refuses_a_changed_scenario(inputs, local_run):
    root, path, model = inputs
    changed = root / "changed.yaml"
    changed.write_text(path.read_text().replace("resamples: 100", "resamples: 150"))
    options = RunOptions(out_dir=root / "out-local", cache_dir=root / "cache-local", resume=True)
    with pytest.raises(AuditInputError) as err:
        run_audit(
            load_scenario(changed),
            scenario_path=changed,
            target_path=model,
            data_source=None,
            options=options,
            log=lambda m: None,
        )
    assert str(err.value) == (
        f"{root / 'out-local' / 'results.json'}: cannot resume: the scenario changed since that "
        "run; use another --out or drop --resume to start over"
    )


def test_results_json_round_trips(inputs, local_run):
    path = inputs[0] / "out-local" / "results.json"
    assert read_results(path) == local_run
    assert json.loads(path.read_text())["schema_version"] == "2.0"
