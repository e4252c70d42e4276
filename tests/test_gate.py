"""The gate's outputs from recorded rules: exit codes, JUnit (names, counts, risk ids) and the PR summary."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from medaudit.gate import exit_code
from medaudit.gate.junit import junit_xml, write_junit
from medaudit.gate.markdown import MAX_LINES, counts_text, markdown_summary, write_markdown
from medaudit.judging.rules import NO_CRITERIA
from medaudit.judging.verdict import judge
from medaudit.records.results import count_outcomes
from tests.fixtures_results import SCENARIO_FILE_SHA256, TARGET_SHA256, make_breaking, make_choice, make_results


@pytest.mark.parametrize("verdict, code", [("PASS", 0), ("FAIL", 1), ("INCONCLUSIVE", 1), ("ERROR", 2), ("PENDING", 2)])
def test_exit_codes(verdict, code):
    assert exit_code(verdict) == code


def test_exit_code_rejects_unknown_verdict():
    with pytest.raises(ValueError, match="unknown verdict"):
        exit_code("MAYBE")


def test_fixture_verdict_and_counts():
    results = make_results()
    assert results.verdict == "FAIL"
    assert count_outcomes(results.gate) == {"PASS": 3, "FAIL": 13, "INCONCLUSIVE": 8, "ERROR": 0}
    assert counts_text(results) == "9 rows: 6 fail, 3 inconclusive"  # page 1 counts its own rows, not the rules
    assert [(v.tier, v.gated, v.status) for v in results.tier_verdicts] == [
        ("transfer", True, "FAIL"),
        ("query", False, "FAIL"),
        ("whitebox", False, "FAIL"),
    ]


def test_junit_has_one_testcase_per_rule_with_its_risk_ids(tmp_path):
    results = make_results()
    path = tmp_path / "junit.xml"
    write_junit(results, path)
    assert [p.name for p in tmp_path.iterdir()] == ["junit.xml"]  # no temp file left behind
    suite = ET.parse(path).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [r.id for r in results.gate]
    assert [c.get("classname") for c in cases] == [r.row_id for r in results.gate]
    for case, rule in zip(cases, results.gate):
        props = {p.get("name"): p.get("value") for p in case.find("properties")}
        assert (props["tier"], props["criterion_id"], props["threat_id"], props["control_id"], props["outcome"]) == (
            rule.tier,
            rule.criterion_id,
            rule.threat_id,
            rule.control_id,
            rule.status,
        )
        assert props["breaking_epsilon"].startswith("ε*")
    types = [f.get("type") for f in suite.iter("failure")]
    assert types.count("FAIL") == 13 and types.count("INCONCLUSIVE") == 8
    assert int(suite.get("failures")) == 21 and int(suite.get("errors")) == 0 and int(suite.get("tests")) == 24
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert (props["count_pass"], props["count_fail"], props["count_inconclusive"], props["count_error"]) == (
        "3",
        "13",
        "8",
        "0",
    )
    assert (props["tier_transfer"], props["tier_whitebox"]) == ("FAIL (gated)", "FAIL")
    assert props["target_sha256"] == TARGET_SHA256 and props["scenario_file_sha256"] == SCENARIO_FILE_SHA256
    assert props["scenario_canonical_sha256"] == results.scenario.content_hash() and props["verdict"] == "FAIL"


def test_no_criteria_is_one_failing_testcase_and_says_why():
    results = make_results(gate={})
    assert len(results.gate) == 1 and results.verdict == "INCONCLUSIVE" and exit_code(results.verdict) == 1
    suite = ET.fromstring(junit_xml(results)).find("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "1"
    assert suite.find("testcase").get("name") == "gate/acceptance-criteria"
    assert suite.find("testcase/failure").get("message") == f"INCONCLUSIVE: {NO_CRITERIA}"
    text = markdown_summary(results)
    assert NO_CRITERIA in text and "0 rows: none judged" in text


def test_junit_counts_errors():
    results = make_results()
    choices = (results.epsilon_choice[0], make_choice("pgd-step0.01-it20", ())) + results.epsilon_choice[2:]
    breaking = make_breaking(results.scenario, results.cells, choices)
    judged = judge(results.scenario, results.cells, results.surrogates, choices, breaking, results.tiers, None)
    errored = results.model_copy(
        update={
            "epsilon_choice": choices,
            "gate": judged.rules,
            "verdict": judged.verdict,
        }
    )
    rules = judged.rules
    suite = ET.fromstring(junit_xml(errored)).find("testsuite")
    n_errors = sum(r.status == "ERROR" for r in rules)
    assert n_errors == 2 * 3 * 2  # rows x criteria x (pgd, worst over attacks)
    assert suite.get("errors") == str(n_errors) and len(suite.findall("testcase/error")) == n_errors
    assert suite.find("properties/property[@name='verdict']").get("value") == "ERROR"


def test_markdown_summary_is_page_one_and_fits_a_pull_request_comment(tmp_path):
    results = make_results(name="evil|<b>name</b>")
    text = markdown_summary(results)
    assert len(text.splitlines()) <= MAX_LINES
    assert "verdict: FAIL ✖" in text and TARGET_SHA256[:16] in text and "gated tiers: transfer" in text
    assert "<b>" not in text and "evil\\|" in text
    statuses = [r.status for r in results.verdict_rows]
    assert f"{len(statuses)} rows: " in text and "every gate rule behind them: junit.xml" in text
    for row in results.verdict_rows:
        tier = {"transfer": "transfer", "query": "query (reported)", "whitebox": "white-box (reported; verified)"}[
            row.tier
        ]
        assert f"| {tier} | {row.criterion_id} |" in text
    assert text.count("| ✖ |") == 6 and text.count("| ! |") == 3
    assert "**Not for submission:** no intended use stated (card `intended_use`)" in text
    assert "Worst case:** Worst case over every tier: the white-box attacker" in text and "http" not in text
    write_markdown(results, tmp_path / "summary.md")
    assert (tmp_path / "summary.md").read_text(encoding="utf-8") == text
    assert "Not for submission" not in markdown_summary(make_results(intended_use="triage of chest X-rays"))


def test_github_actions_example_keeps_evidence_and_fails_on_gate():
    workflow = yaml.safe_load((Path(__file__).parents[1] / "examples" / "github-actions-audit.yml").read_text())
    steps = workflow["jobs"]["audit"]["steps"]
    run = next(s for s in steps if s.get("id") == "audit")
    assert "medaudit run --target" in run["run"] and "--out audit" in run["run"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    assert {"audit/report.pdf", "audit/results.json", "audit/junit.xml"} <= set(upload["with"]["path"].split())
    assert "exit 1" in steps[-1]["run"] and "steps.audit.outputs.code != '0'" in steps[-1]["if"]
    # the previous release's evidence is fetched, given to the run as its baseline and compared against
    assert '--baseline "$BASELINE"' in run["run"] and "gh release download" in steps[steps.index(run) - 1]["run"]
    compare = next(s for s in steps if s.get("id") == "compare")
    assert 'medaudit compare "$BASELINE" audit/results.json' in compare["run"]
    assert "steps.compare.outputs.code != '0'" in steps[-1]["if"] and "3)" in steps[-1]["run"]
