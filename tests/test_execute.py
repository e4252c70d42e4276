"""Executors run the same job functions: every enrolled executor gives the local executor's cell records
bit for bit; an interrupted run resumes without recomputing what it finished; a second audit in one process
counts its own queries."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from medaudit.audit.run import run_audit
from medaudit.core.errors import AuditInputError
from medaudit.engine.executors import EXECUTORS
from medaudit.engine.plan import RunOptions
from medaudit.records.results import read_results
from medaudit.scenario.threat_model import load_scenario
from tests.conftest import tiny_target, write_synthetic_npz

pytestmark = pytest.mark.slow  # runs whole audits (training, attacks) with every executor

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
  - {{name: square, queries_per_image: 20, images: 20}}
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


REQUIRE_RAY = "MEDAUDIT_REQUIRE_RAY"  # "1" (CI): the Ray executor's test must run, a missing Ray fails it


def _available(executor: str) -> None:
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        reason = "Ray is not installed: `pip install 'medaudit[ray]'` runs this test"
        if os.environ.get(REQUIRE_RAY) == "1":
            pytest.fail(f"{reason} ({REQUIRE_RAY}=1 turns this skip into a failure)")
        pytest.skip(reason)


@pytest.mark.parametrize("executor", list(EXECUTORS))
def test_every_executor_gives_the_local_records_bit_for_bit(inputs, local_run, executor):
    _available(executor)
    results = _run(inputs, f"fresh-{executor}", executor=executor)
    assert results.environment.executor == executor
    assert [c.model_dump_json() for c in results.cells] == [c.model_dump_json() for c in local_run.cells]
    assert [s.test_auc for s in results.surrogates] == [s.test_auc for s in local_run.surrogates]
    assert results.execution.cell_jobs_computed == 6 + 1  # a fresh cache: 3 attackers x 2 attacks, 1 bound job


def test_the_run_covers_seeds_their_ensemble_its_probe_and_the_query_tier(local_run):
    attackers = {c.attacker_id for c in local_run.cells if c.tier == "transfer"}
    assert len(attackers) == 3 and sum(a.startswith("ens-") for a in attackers) == 1
    ensemble = next(s for s in local_run.surrogates if s.id.startswith("ens-"))
    assert len(ensemble.member_ids) == 2 and ensemble.row_id == "tiny_cnn-random-d2"
    probe = next(s for s in local_run.surrogates if s.role == "probe")
    assert probe.seed == 2 and probe.test_auc is None and probe.id not in attackers
    ens_cell = next(c for c in local_run.cells if c.attacker_id == ensemble.id)
    assert ens_cell.transfer.model_ids == (probe.id,)  # the ensemble's transfer is measured on the probe
    assert {s.n_surrogates for s in local_run.seed_spread} == {2}  # seeds only; the ensemble stands apart
    assert len(local_run.per_image) == 1 + len(local_run.cells)
    query = [c for c in local_run.cells if c.tier == "query"]
    assert [c.n_images for c in query] == [20, 20] and local_run.tiers[0].tier == "query"
    assert all(c.target_queries > 2 * 20 for c in query)  # crafting's queries are counted in the cell


ATTACKER_FIELDS = ("surrogate_auc_clean", "surrogate_auc_whitebox", "transfer")


def test_a_second_target_reuses_the_attackers_checks_without_loading_a_surrogate(inputs, local_run, monkeypatch):
    from medaudit.engine import measure

    other = tiny_target(inputs[0] / "other.onnx", seed=5)
    fresh = _run(inputs, "other-fresh", target=other)  # its own cache: every check measured for this target
    cache = inputs[0] / "cache-local"
    entries = sorted(p.name for p in (cache / "attacker").iterdir())
    assert len(entries) == 6  # one per transfer cell job (attacker x attack)

    def no_surrogate(*args):
        raise AssertionError("a cell loaded a surrogate although its images and checks are cached")

    monkeypatch.setattr(measure, "surrogates", no_surrogate)
    shared = _run(inputs, "other-shared", target=other, cache="local")
    assert shared.execution.cell_jobs_computed == 6 + 1  # a new target: its cells are new
    assert sorted(p.name for p in (cache / "attacker").iterdir()) == entries
    assert [c.model_dump_json() for c in shared.cells] == [c.model_dump_json() for c in fresh.cells]
    transfer = [c for c in local_run.cells if c.tier == "transfer"]
    for mine, first in zip([c for c in shared.cells if c.tier == "transfer"], transfer, strict=True):
        assert [getattr(mine, f) for f in ATTACKER_FIELDS] == [getattr(first, f) for f in ATTACKER_FIELDS]
    assert [c.auc_clean.point for c in shared.cells] != [c.auc_clean.point for c in local_run.cells]


def test_a_second_audit_in_one_process_counts_the_same_queries(inputs, local_run):
    again = _run(inputs, "local-again", cache="local")  # every job from the cache; the driver's queries again
    assert again.target_queries == local_run.target_queries
    assert local_run.target_queries == (
        2 * local_run.target.load_check.images
        + local_run.data.test_size
        + sum(c.target_queries for c in local_run.cells if c.tier == "transfer")
        + sum(t.target_queries for t in local_run.tiers)
        + (local_run.data.split_sizes["d2"])  # the operating threshold on the unseen split
    )


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
        "surrogates_cached": 3,
        "cell_jobs_computed": 4 + 1,
        "cell_jobs_cached": 2,
        "bisection_jobs_computed": 0,  # nothing breaks between grid points wider than the bootstrap's reach
        "bisection_jobs_cached": 0,
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
    assert json.loads(path.read_text())["schema_version"] == "3.3"


def test_compare_two_releases_on_the_same_images(inputs, local_run, tmp_path):
    from typer.testing import CliRunner

    from medaudit.cli import app
    from medaudit.gate.release_comparison import compare

    root = inputs[0]
    other = tiny_target(root / "other.onnx", seed=5)
    _run(inputs, "release-2", target=other, cache="local")
    base, new = root / "out-local" / "results.json", root / "out-release-2" / "results.json"
    comparison = compare(base, new)
    assert [(c.tier, c.criterion_id) for c in comparison.changes] == [("transfer", "C-REL-AUC"), ("query", "C-REL-AUC")]
    for change in comparison.changes:
        assert change.difference.low <= change.difference.point <= change.difference.high
        assert change.status in ("PASS", "FAIL", "INCONCLUSIVE") and change.message.startswith("change ")
    result = CliRunner().invoke(app, ["compare", str(base), str(new), "--out", str(tmp_path)])
    assert result.exit_code == {"PASS": 0, "FAIL": 3, "INCONCLUSIVE": 3}[comparison.verdict], result.output
    assert (tmp_path / "comparison.md").read_text().startswith("### medaudit release comparison")
    assert (tmp_path / "comparison.junit.xml").is_file()
    same = compare(new, new)
    assert all(c.difference.point == 0 and c.status == "PASS" for c in same.changes)


@pytest.mark.parametrize("damage", ["scenario", "truncated", "schema"])
def test_compare_refuses_what_cannot_be_compared_in_one_line(inputs, local_run, tmp_path, damage):
    from typer.testing import CliRunner

    from medaudit.cli import app

    base = inputs[0] / "out-local" / "results.json"
    bad = tmp_path / "bad" / "results.json"
    bad.parent.mkdir()
    text = base.read_text()
    raw = json.loads(text)
    if damage == "scenario":
        raw["provenance"]["scenario_canonical_sha256"] = "0" * 64
        bad.write_text(json.dumps(raw))
    elif damage == "truncated":
        bad.write_text(text[: len(text) // 2])
    else:
        raw["schema_version"] = "2.0"
        bad.write_text(json.dumps(raw))
    result = CliRunner().invoke(app, ["compare", str(base), str(bad), "--out", str(tmp_path / "out")])
    said = {
        "scenario": "its scenario differs from the previous release's",
        "truncated": "not valid JSON",
        "schema": "results schema version '2.0'; this medaudit reads 3.3",
    }[damage]
    assert result.exit_code == 2 and said in result.stderr and len(result.stderr.splitlines()) == 1
    assert str(bad) in result.stderr and not (tmp_path / "out").exists()  # nothing written
