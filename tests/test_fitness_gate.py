"""An audit is only as strong as its attacker: a surrogate that cannot learn never turns into a PASS.

The same scenario and target twice: once with surrogates trained normally (fit: they learn and their
perturbations move the row's held-out probe beyond its control), where a lenient gate passes; once with a
learning rate so small the surrogates stay at chance, where the row is INCONCLUSIVE with the reason.
"""

from __future__ import annotations

import pytest

from medaudit.attackers.target_training import build_target
from medaudit.audit.run import run_audit
from medaudit.engine.plan import RunOptions
from medaudit.scenario.threat_model import load_scenario
from tests.conftest import write_synthetic_npz

pytestmark = pytest.mark.slow  # trains targets and surrogates

SCENARIO = """
name: fitness
target: {{trained_on: d1}}
data: {{source: {data}, test_limit: 60, image_size: 16}}
surrogates: [{{arch: tiny_cnn, init: random, data: d2, seed: 0}}]
training: {{epochs: 6, batch_size: 32, learning_rate: {lr}, patience: 3, augment: []}}
attacks: [{{name: pgd, step_pm1: 0.05, iterations: 10}}]
epsilons_pm1: [0.01, 0.3]
perceptibility: {{min_mean_ssim: 0.1}}
bootstrap: {{resamples: 200}}
fitness: {{min_surrogate_auc: 0.6, min_transfer_drop: 0.0}}
gate: {{max_adversarial_specific_drop: 0.99}}   # lenient: what is measured would pass
"""


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    root = tmp_path_factory.mktemp("fitness")
    data = write_synthetic_npz(root / "blobs.npz", counts=(240, 60, 80))

    def run(name: str, lr: float):
        path = root / f"{name}.yaml"
        path.write_text(SCENARIO.format(data=data, lr=lr))
        scenario = load_scenario(path)
        target = build_target(
            scenario.model_copy(update={"training": scenario.training.model_copy(update={"learning_rate": 1e-3})}),
            data,
            arch="tiny_cnn",
            init="random",
            out_path=root / "target.onnx",
            cache_dir=root / "cache",
            class_names=("n", "p"),
            log=lambda m: None,
        )
        return run_audit(
            scenario,
            scenario_path=path,
            target_path=target,
            data_source=None,
            options=RunOptions(out_dir=root / name, cache_dir=root / "cache"),
            log=lambda m: None,
        )

    return run


ATTACK = "pgd-step0.05-it10"


def test_fit_surrogates_let_a_lenient_gate_pass(audit):
    results = audit("trained", 1e-3)
    (surrogate,) = [s for s in results.surrogates if s.role == "attacker"]
    fitness = surrogate.fitness_for(ATTACK)
    assert fitness.fit, fitness.reasons
    assert fitness.transfer.drop_beyond_control.low > 0  # it moves the probe beyond the probe's own control
    assert results.target.clean_auc > 0.9
    assert results.verdict == "PASS", [(r.id, r.status, r.message) for r in results.gate]


def test_a_surrogate_at_chance_makes_the_row_inconclusive_never_pass(audit):
    results = audit("at-chance", 1e-9)
    (surrogate,) = [s for s in results.surrogates if s.role == "attacker"]
    fitness = surrogate.fitness_for(ATTACK)
    assert not fitness.fit
    assert fitness.reasons[0].startswith("clean test AUC")
    assert results.verdict == "INCONCLUSIVE"
    (rule,) = [r for r in results.gate if r.criterion_id == "C-ADV-DROP"]
    assert rule.status == "INCONCLUSIVE" and "did not learn the task" in rule.message
