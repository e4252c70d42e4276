"""The gate on hand-made intervals: statuses, verdict precedence, exit codes, JUnit and the PR summary."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.fixtures_results import TARGET_SHA256, iv, make_cell, make_results, scenario_dict
from medaudit.gate import (NO_CRITERIA, evaluate_gate, exit_code, junit_xml, markdown_summary, write_junit,
                           write_markdown)
from medaudit.results import AuditResults, EpsilonChoice, SurrogateResult


def _surrogate(row_id: str, sid: str, seed: int = 0) -> SurrogateResult:
    return SurrogateResult(id=sid, row_id=row_id, arch="resnet18", family="resnet", init="random", split="d2",
                           seed=seed, n_train=100, n_val=10, val_auc=0.8, test_auc=0.8, epochs_run=3, best_epoch=2,
                           train_seconds=1.0, from_cache=False, atlas=["AML.T0043.002", "AML.T0005.001"])


def _results(cells: list, *, gate: dict, chosen: dict[str, float | None], surrogates: list | None = None) -> AuditResults:
    """A record holding exactly the given cells; one surrogate per row unless `surrogates` says otherwise."""
    if surrogates is None:
        surrogates = [_surrogate(r, s) for r, s in dict.fromkeys((c.row_id, c.surrogate_id) for c in cells)]
    choices = [EpsilonChoice(attack_id=a, curve=[(0.01, 0.85), (0.02, 0.80)], bound=0.9, chosen_epsilon_pm1=e,
                             reason="hand-made") for a, e in chosen.items()]
    return AuditResults(status="complete", scenario_path="s.yaml", scenario=scenario_dict(gate=gate),
                        scenario_sha256="b" * 64, command="medaudit run", target={"path": "m.onnx", "sha256": TARGET_SHA256},
                        data={}, surrogates=surrogates, cells=cells, epsilon_choice=choices)


def _one(relative=None, drop=None, *, gate: dict) -> AuditResults:
    cell = make_cell("row-a", "sur-a", "fgsm", 0.02, 0.6, relative=relative, drop=drop)
    return _results([cell], gate=gate, chosen={"fgsm": 0.02})


MIN = {"min_relative_auc": 0.8}
MAX = {"max_adversarial_specific_drop": 0.1}


@pytest.mark.parametrize("point, low, high, status", [
    (0.85, 0.82, 0.88, "PASS"),
    (0.85, 0.80, 0.90, "PASS"),  # the bound equal to the threshold meets it
    (0.70, 0.65, 0.75, "FAIL"),
    (0.82, 0.78, 0.86, "INCONCLUSIVE"),  # point passes, bound fails
    (0.79, 0.76, 0.81, "INCONCLUSIVE"),  # point fails, interval still reaches the threshold
], ids=["pass", "bound-equal", "fail", "point-passes", "point-fails"])
def test_min_relative_auc_is_judged_on_the_lower_bound(point, low, high, status):
    rules, verdict, _ = evaluate_gate(_one(relative=iv(point, low, high), gate=MIN))
    assert [r.status for r in rules] == [status]
    assert verdict == status
    assert rules[0].id == "row-a/fgsm/min-relative-auc"
    assert rules[0].value.low == low and rules[0].epsilon_pm1 == 0.02


@pytest.mark.parametrize("point, low, high, status", [
    (0.05, 0.02, 0.08, "PASS"),
    (0.07, 0.04, 0.10, "PASS"),
    (0.20, 0.15, 0.25, "FAIL"),
    (0.08, 0.04, 0.12, "INCONCLUSIVE"),
], ids=["pass", "bound-equal", "fail", "straddles"])
def test_max_adversarial_specific_drop_is_judged_on_the_upper_bound(point, low, high, status):
    rules, verdict, _ = evaluate_gate(_one(drop=iv(point, low, high), gate=MAX))
    assert [(r.id, r.status) for r in rules] == [("row-a/fgsm/max-adversarial-specific-drop", status)]
    assert "upper 95% bound ≤ 0.10" in rules[0].rule


def test_attack_without_chosen_epsilon_is_an_error_naming_the_fix():
    cells = [make_cell("row-a", "sur-a", "fgsm", 0.02, 0.8, relative=iv(0.95))]
    results = _results(cells, gate={**MIN, **MAX}, chosen={"fgsm": 0.02, "pgd": None})
    rules, verdict, _ = evaluate_gate(results)
    errors = [r for r in rules if r.status == "ERROR"]
    assert {r.attack_id for r in errors} == {"pgd", "worst-over-attacks"}
    assert len([r for r in errors if r.attack_id == "pgd"]) == 2  # one per configured threshold
    assert all("extend `epsilons_pm1` downward" in r.message for r in errors if r.attack_id == "pgd")
    assert verdict == "ERROR" and exit_code(verdict) == 2


def test_missing_cell_and_undefined_interval_are_errors():
    missing = _results([make_cell("row-a", "sur-a", "fgsm", 0.01, 0.8)], gate=MIN, chosen={"fgsm": 0.02})
    rules, verdict, _ = evaluate_gate(missing)
    assert verdict == "ERROR" and "no cell" in rules[0].message
    nan = _one(relative=iv(0.9, math.nan, math.nan), gate=MIN)
    rules, verdict, _ = evaluate_gate(nan)
    assert verdict == "ERROR" and "undefined" in rules[0].message


@pytest.mark.parametrize("statuses, verdict", [
    (("PASS", "PASS"), "PASS"),
    (("PASS", "INCONCLUSIVE"), "INCONCLUSIVE"),
    (("INCONCLUSIVE", "FAIL"), "FAIL"),
    (("FAIL", "PASS"), "FAIL"),
])
def test_verdict_precedence(statuses, verdict):
    interval = {"PASS": iv(0.9, 0.85, 0.95), "FAIL": iv(0.6, 0.55, 0.65), "INCONCLUSIVE": iv(0.8, 0.75, 0.85)}
    cells = [make_cell(f"row-{k}", f"sur-{k}", "fgsm", 0.02, 0.6, relative=interval[s]) for k, s in enumerate(statuses)]
    rules, got, _ = evaluate_gate(_results(cells, gate=MIN, chosen={"fgsm": 0.02}))
    assert [r.status for r in rules] == list(statuses)
    assert got == verdict


def test_error_outranks_fail():
    cells = [make_cell("row-a", "sur-a", "fgsm", 0.02, 0.5, relative=iv(0.5))]
    _, verdict, _ = evaluate_gate(_results(cells, gate=MIN, chosen={"fgsm": 0.02, "pgd": None}))
    assert verdict == "ERROR"


@pytest.mark.parametrize("verdict, code", [("PASS", 0), ("FAIL", 1), ("INCONCLUSIVE", 1), ("ERROR", 2)])
def test_exit_codes(verdict, code):
    assert exit_code(verdict) == code


def test_exit_code_rejects_unknown_verdict():
    with pytest.raises(ValueError, match="unknown verdict"):
        exit_code("MAYBE")


def test_worst_case_over_attacks_is_its_own_rule():
    cells = [make_cell("row-a", "sur-a", "fgsm", 0.02, 0.6, relative=iv(0.84, 0.79, 0.89)),
             make_cell("row-a", "sur-a", "pgd", 0.03, 0.5, relative=iv(0.90, 0.86, 0.94))]
    rules, verdict, worst = evaluate_gate(_results(cells, gate=MIN, chosen={"fgsm": 0.02, "pgd": 0.03}))
    assert [r.id for r in rules] == ["row-a/fgsm/min-relative-auc", "row-a/pgd/min-relative-auc",
                                     "row-a/worst-over-attacks/min-relative-auc"]
    worst_rule = rules[-1]
    assert worst_rule.status == "INCONCLUSIVE" and worst_rule.value.low == 0.79 and worst_rule.epsilon_pm1 == 0.02
    assert verdict == "INCONCLUSIVE"
    # the worst case reported is the cell with the lowest adversarial AUC point, whatever its relative AUC
    assert (worst["attack_id"], worst["epsilon_pm1"], worst["auc_adversarial"]["point"]) == ("pgd", 0.03, 0.5)
    assert worst["statement"].count(". ") >= 1 and worst["statement"].endswith(".")


def test_several_surrogates_in_a_row_are_judged_separately():
    cells = [make_cell("row-a", f"sur-{s}", a, 0.02, 0.6, relative=iv(0.9)) for s in (0, 1) for a in ("fgsm", "pgd")]
    surrogates = [_surrogate("row-a", "sur-0", 0), _surrogate("row-a", "sur-1", 1)]
    rules, verdict, _ = evaluate_gate(_results(cells, gate={**MIN, **MAX}, chosen={"fgsm": 0.02, "pgd": 0.02},
                                               surrogates=surrogates))
    assert len(rules) == 2 * 2 * 2 + 1
    assert "row-a/sur-1/pgd/max-adversarial-specific-drop" in {r.id for r in rules}
    assert len({r.id for r in rules}) == len(rules)


def test_no_thresholds_gives_no_rules_and_an_inconclusive_verdict():
    results = make_results(gate={"specificity": 0.9})
    rules, verdict, worst = evaluate_gate(results)
    assert rules == [] and verdict == "INCONCLUSIVE" and exit_code(verdict) == 1
    assert worst["note"] == NO_CRITERIA
    assert NO_CRITERIA in markdown_summary(results)
    suite = ET.fromstring(junit_xml(results)).find("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "1"


def test_fixture_verdict():
    results = make_results()
    statuses = [r.status for r in results.gate]
    assert results.verdict == "FAIL" and {"PASS", "FAIL", "INCONCLUSIVE"} <= set(statuses)
    assert len(results.gate) == 2 * (2 * 2 + 1)


def test_junit_has_one_testcase_per_rule(tmp_path):
    results = make_results()
    path = tmp_path / "junit.xml"
    write_junit(results, path)
    assert [p.name for p in tmp_path.iterdir()] == ["junit.xml"]  # no temp file left behind
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [r.id for r in results.gate]
    assert [c.get("classname") for c in cases] == [r.row_id for r in results.gate]
    n_fail = sum(r.status in ("FAIL", "INCONCLUSIVE") for r in results.gate)
    assert len(suite.findall("testcase/failure")) == n_fail == int(suite.get("failures"))
    assert len(suite.findall("testcase/error")) == 0 == int(suite.get("errors"))
    assert int(suite.get("tests")) == len(results.gate)
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["target_sha256"] == TARGET_SHA256 and props["scenario_name"] == "data_disparity"
    types = sorted(f.get("type") for f in suite.iter("failure"))
    assert types == sorted(r.status for r in results.gate if r.status in ("FAIL", "INCONCLUSIVE"))


def test_junit_counts_errors():
    cells = [make_cell("row-a", "sur-a", "fgsm", 0.02, 0.8, relative=iv(0.95))]
    results = _results(cells, gate=MIN, chosen={"fgsm": 0.02, "pgd": None})
    suite = ET.fromstring(junit_xml(results)).find("testsuite")
    assert suite.get("errors") == "2" and len(suite.findall("testcase/error")) == 2
    assert suite.find("properties/property[@name='verdict']").get("value") == "ERROR"


def test_markdown_summary(tmp_path):
    results = make_results(name="evil|<b>name</b>")
    text = markdown_summary(results)
    assert "verdict: FAIL ✖" in text and TARGET_SHA256[:16] in text
    assert "<b>" not in text and "evil\\|" in text
    assert text.count("| ✓ |") == sum(r.status == "PASS" for r in results.gate)
    assert text.count("| ! |") == sum(r.status == "INCONCLUSIVE" for r in results.gate)
    assert "Worst case" in text and "http" not in text
    write_markdown(results, tmp_path / "summary.md")
    assert (tmp_path / "summary.md").read_text(encoding="utf-8") == text


def test_github_actions_example_keeps_evidence_and_fails_on_gate():
    workflow = yaml.safe_load((Path(__file__).parents[1] / "examples" / "github-actions-audit.yml").read_text())
    steps = workflow["jobs"]["audit"]["steps"]
    run = next(s for s in steps if s.get("id") == "audit")
    assert "medaudit run --target" in run["run"] and "--out audit" in run["run"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    assert {"audit/report.pdf", "audit/results.json", "audit/junit.xml"} <= set(upload["with"]["path"].split())
    assert "exit 1" in steps[-1]["run"] and "steps.audit.outputs.code != '0'" in steps[-1]["if"]
