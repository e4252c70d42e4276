"""Scenario files: the shipped ones are valid, and every kind of mistake is one clear line."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medaudit.attacks import PGD
from medaudit.cli import app
from medaudit.core.errors import AuditInputError
from medaudit.scenario.threat_model import load_scenario

SHIPPED = sorted(p.name for p in resources.files("medaudit.scenarios").iterdir() if p.name.endswith(".yaml"))


def test_paper_experiments_ship_as_package_data():
    assert {"perturbation_degree.yaml", "pretraining.yaml", "data_disparity.yaml", "small_data.yaml"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_are_valid_with_three_seeds_and_a_strong_attack(name):
    scenario = load_scenario(Path(str(resources.files("medaudit.scenarios") / name)))
    assert scenario.capabilities.queries_to_target == 0 and scenario.surrogate_rows()
    seeds: dict[str, set[int]] = {}
    for row in scenario.surrogate_rows():
        seeds.setdefault(row.row_id, set()).add(row.seed)
    fewest = 2 if name == "demo_retina.yaml" else 3  # the demo trades a seed for time; each seed checks the other
    assert all(len(s) >= fewest for s in seeds.values()), seeds
    boosted = any(getattr(a, "diversity_prob", 0) > 0 and getattr(a, "ti_kernel", 0) > 0 for a in scenario.attacks)
    assert boosted or name == "demo_retina.yaml"  # the demo keeps FGSM and PGD to run in minutes


def test_data_disparity_grid_expands_to_six_rows_of_three_seeds():
    scenario = load_scenario(Path(str(resources.files("medaudit.scenarios") / "data_disparity.yaml")))
    rows = scenario.surrogate_rows()
    assert list(dict.fromkeys((r.arch, r.data) for r in rows)) == [
        ("same", "d1"),
        ("same", "d2"),
        ("same", "d2/2"),
        ("different", "d1"),
        ("different", "d2"),
        ("different", "d2/2"),
    ]
    assert [r.seed for r in rows[:3]] == [0, 1, 2] and len(rows) == 18 and scenario.ensembles == ("seeds",)
    pgd = next(a for a in scenario.attacks if isinstance(a, PGD))
    assert (pgd.step_pm1, pgd.iterations) == (0.01, 20)


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("name: x\nattacks:\n  - name: pgd\n    stepsize: 0.1\n", r"field `attacks.0.pgd.stepsize`: unknown key"),
        ("name: x\nepsilons_pm1: [0.02, 3]\n", r"field `epsilons_pm1`: .*\(0, 1\]"),
        ("name: x\nsurrogates:\n  init: [imagenet, pretrained]\n", r"field `surrogates.*init.1`"),
        ("name: x\ncapabilities: {queries_to_target: 100}\n", r"field `capabilities.queries_to_target`"),
        ("name: x\nattacks:\n  - name: cw\n", r"field `attacks.0`"),
        ("name: x\ngoal: targeted\n", r"field `goal`"),
        ("name: x\nbogus: 1\n", r"field `bogus`: unknown key"),
        ("name: x\nattacks: [\n", r"line \d+, column \d+: YAML syntax error"),
        ("- just\n- a list\n", r"a scenario is a YAML mapping"),
        ("description: no name\n", r"field `name`: Field required"),
        ("name: x\nperceptibility: null\n", r"`auto` searches the epsilon where the perceptibility bound binds"),
        ("name: x\ngate: {tiers: [transfer, oracle]}\n", r"field `gate.tiers.1`: .*'transfer', 'query' or 'whitebox'"),
        ("name: x\ngate: {tiers: [whitebox]}\n", r"gate.tiers names 'whitebox' but no attack of that tier .*\(apgd\)"),
        ("name: x\nattacks: [{name: square, queries_per_image: -5}]\n", r"field `attacks.0.square.queries_per_image`"),
        ("name: x\ngate: {rationale: {min_auc: why}}\n", r"field `gate.rationale.min_auc`: unknown key"),
    ],
)
def test_bad_scenarios_name_file_and_field(tmp_path, text, pattern):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(AuditInputError, match=pattern) as info:
        load_scenario(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_search_epsilon_bound_the_target_and_state_why(name):
    scenario = load_scenario(Path(str(resources.files("medaudit.scenarios") / name)))
    assert scenario.epsilons_pm1 == "auto" and scenario.perceptibility.near_invisible_ssim == 0.98
    assert {a.tier for a in scenario.attacks} == {"transfer", "query", "whitebox"}
    assert scenario.gate.tiers == ("transfer",)
    for field in ("min_relative_auc", "max_adversarial_specific_drop"):
        assert getattr(scenario.gate, field) is not None and getattr(scenario.gate.rationale, field)


def test_validate_command_exit_codes(tmp_path):
    good = str(resources.files("medaudit.scenarios") / "pretraining.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nepsilons_pm1: []\n")
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", good])
    assert ok.exit_code == 0 and "valid scenario 'pretraining'" in ok.output
    failed = runner.invoke(app, ["validate", good, str(bad)])
    assert failed.exit_code == 2 and "epsilons_pm1" in failed.output and "Traceback" not in failed.output


def test_schema_command_prints_json_schema():
    import json

    result = CliRunner().invoke(app, ["schema"])
    schema = json.loads(result.output)
    assert result.exit_code == 0 and "epsilons_pm1" in schema["properties"]
