"""The report: facts checked in a real PDF (poppler's pdftotext), autoescaped HTML, gaps shown not filled in."""

from __future__ import annotations

import ast
import hashlib
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from markupsafe import escape

from medaudit.criteria import CONTROLS, NO_CRITERIA, judge
from medaudit.gate import counts_text, write_junit, write_markdown
from medaudit.report import render_html, write_report
from medaudit.report.images import centre_crop
from medaudit.report.risk import REFERENCES
from medaudit.report.tables import whitebox_check
from medaudit.report.units import native_epsilon
from medaudit.results import write_results
from medaudit.scenario import CardFields
from tests.fixtures_results import (
    CODE_COMMIT,
    SCENARIO_FILE_SHA256,
    TARGET_SHA256,
    iv,
    make_cell,
    make_choice,
    make_results,
    make_scenario,
    make_surrogate,
)

PACKAGE = Path(__file__).parents[1] / "medaudit"


def _poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found: install Debian/Ubuntu package poppler-utils (apt-get install -y poppler-utils)")
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One real render of the fixture run with its junit.xml and summary.md (WeasyPrint takes seconds)."""
    out = tmp_path_factory.mktemp("audit")
    results = make_results()
    write_results(results, out / "results.json")
    write_junit(results, out / "junit.xml")
    write_markdown(results, out / "summary.md")
    start = time.perf_counter()
    html_path, pdf_path = write_report(results, out, results_path=out / "results.json")
    seconds = time.perf_counter() - start
    print(f"write_report: {seconds:.2f} s")
    # -raw keeps a table cell's lines together and never drops a hyphen at a line break
    text = subprocess.run(
        [_poppler("pdftotext"), "-raw", str(pdf_path), "-"], check=True, capture_output=True, text=True
    ).stdout
    return results, out, html_path, pdf_path, seconds, text


def _squash(text: str) -> str:
    """PDF text without whitespace, so ids and hashes broken over lines match."""
    return "".join(text.split())


def test_write_report_renders_a_pdf(rendered):
    _, out, _, pdf_path, seconds, _ = rendered  # render time is printed, not judged (benchmarks/ measures it)
    assert pdf_path.read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in out.iterdir()) == [
        "junit.xml",
        "report.html",
        "report.pdf",
        "results.json",
        "summary.md",
    ]  # no temp files
    subprocess.run(
        [_poppler("pdftoppm"), "-r", "30", "-f", "1", "-l", "2", "-png", str(pdf_path), str(out / "page")], check=True
    )
    assert len(list(out.glob("page-*.png"))) == 2


def test_pdf_verdict_card_names_the_worst_case_and_its_epsilon_in_three_units(rendered):
    results, _, _, _, _, text = rendered
    first = " ".join(text.split("\f")[0].split())
    assert "FAIL" in first and results.worst_case.epsilon_pm1 == 0.04
    # 0.04 in [-1, 1] units = 5.1 grey levels = 0.02 in the target's [0, 1] input
    assert "ε 0.04 [-1, 1] = 5.1 grey levels = 0.02 target units" in first
    assert "ε = 0.04 in [-1, 1] units (5.1 grey levels of 255)" in first
    assert "202 true positives lost and 99 false positives created" in first
    assert "Intended use not supplied" in first  # the fixture's card states none: a warning on page 1
    assert "Noise fragility" in first and "Noise alone degrades the target" in first


def test_pdf_labels_epsilon_units(rendered):
    text = " ".join(rendered[5].split())
    assert "[-1, 1] units" in text and "grey levels of 255" in text
    assert "target input units (black 0, white 1)" in text
    assert "max |δ| ([-1, 1] units)" in text
    assert "the grid, not perceptibility, limited ε" in text  # PGD: every ε in the grid met the bound


def test_pdf_operating_point_numbers(rendered):
    results, _, _, _, _, text = rendered
    flat = " ".join(text.split())
    worst = results.worst_case
    cell = next(
        c
        for c in results.cells
        if (c.surrogate_id, c.attack_id, c.epsilon_pm1) == (worst.surrogate_id, worst.attack_id, worst.epsilon_pm1)
    )
    op = cell.operating_point
    assert (op.sensitivity_adversarial, op.specificity_adversarial, op.true_positives_lost) == (0.213, 0.477, 202)
    assert "0.730 → 0.213" in flat and "0.900 → 0.477" in flat and "202 (" in flat
    assert "fixed score threshold 0.5 (scenario gate.threshold)" in flat
    assert "True positives lost: diseased cases" in flat and "false positives created: healthy cases" in flat


def test_pdf_junit_and_summary_report_the_same_counts(rendered):
    results, out, _, _, _, text = rendered
    flat = " ".join(text.split())
    pdf = re.search(r"(\d+) gate rules: (\d+) pass, (\d+) fail, (\d+) inconclusive, (\d+) error", flat)
    pdf_counts = dict(zip(("PASS", "FAIL", "INCONCLUSIVE", "ERROR"), map(int, pdf.groups()[1:])))
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    junit_counts = {
        "PASS": sum(c.find("failure") is None and c.find("error") is None for c in cases),
        "FAIL": len(suite.findall("testcase/failure[@type='FAIL']")),
        "INCONCLUSIVE": len(suite.findall("testcase/failure[@type='INCONCLUSIVE']")),
        "ERROR": len(suite.findall("testcase/error")),
    }
    assert pdf_counts == junit_counts == {"PASS": 3, "FAIL": 10, "INCONCLUSIVE": 5, "ERROR": 0}
    assert int(pdf.group(1)) == len(cases) == int(suite.get("tests"))
    summary = re.search(
        r"(\d+) pass, (\d+) fail, (\d+) inconclusive, (\d+) error", (out / "summary.md").read_text(encoding="utf-8")
    )
    assert dict(zip(("PASS", "FAIL", "INCONCLUSIVE", "ERROR"), map(int, summary.groups()), strict=True)) == pdf_counts
    assert summary.group(0) == counts_text(results)
    assert "3 pass, 10 fail, 5 inconclusive, 0 error" in flat


def test_pdf_risk_ids_match_results_junit_and_summary(rendered):
    results, out, _, _, _, text = rendered
    squashed = _squash(text)
    summary = (out / "summary.md").read_text(encoding="utf-8")
    junit_names = {c.get("name") for c in ET.parse(out / "junit.xml").getroot().iter("testcase")}
    for rule in results.gate:
        assert _squash(rule.id) in squashed and rule.id in junit_names and rule.id in summary
        for ident in (rule.criterion_id, rule.threat_id, rule.control_id):
            assert _squash(ident) in squashed and ident in summary
    assert "Risk file (ISO 14971 / AAMI TIR34971)" in " ".join(text.split())
    assert {r.control_id for r in results.gate} == set(CONTROLS)


def test_pdf_reproducibility_annex_and_references(rendered):
    results, out, _, _, _, text = rendered
    squashed, flat = _squash(text), " ".join(text.split())
    assert SCENARIO_FILE_SHA256 in squashed and results.provenance.scenario_canonical_sha256 in squashed
    assert "scenario file sha256" in flat and "scenario canonical sha256" in flat and "not the file's hash" in flat
    assert CODE_COMMIT in squashed and hashlib.sha256((out / "results.json").read_bytes()).hexdigest() in squashed
    assert all(f.sha256 in squashed for f in results.per_image)
    assert _squash(results.provenance.command) in squashed
    for words in ("CC BY 4.0", "Kermany", "label mapping", "split rule", "resampling"):
        assert words in flat
    assert "References" in text and all(_squash(key) in squashed for key, _ in REFERENCES)


def test_pdf_pages_carry_sha_and_numbers(rendered):
    _, _, _, _, _, text = rendered
    pages = text.split("\f")[:-1]
    assert all(TARGET_SHA256[:16] in p for p in pages), "running header missing on a page"
    assert f"page 1 of {len(pages)}" in pages[0] and f"page {len(pages)} of {len(pages)}" in pages[-1]
    order = [
        text.index(h)
        for h in (
            "2 Identification and scope",
            "3 Robustness goal",
            "4 Threat model",
            "5 Protocol",
            "6 Results",
            "7 Perceptibility",
            "8 Risk file",
            "9 Limitations",
            "10 Annexes",
            "References",
        )
    ]
    assert order == sorted(order)


def test_report_html_structure(rendered):
    results, _, html_path, _, _, _ = rendered
    html = html_path.read_text(encoding="utf-8")
    assert html.count("<svg ") == 3  # AUC vs epsilon, SSIM vs epsilon, learning curves: inline vector
    assert html.count('src="data:image/png;base64,') == 5 * len(results.examples)
    assert "◀ worst ε" in html  # the seed-spread line the gate judged
    assert "all attacks (worst: fgsm)" in html and "all attacks (worst: pgd-step0.01-it20)" in html
    assert "ImageNet pre-training (a different architecture, so not the same weights)" in html
    assert (
        str(escape("shares the target's architecture, ImageNet weights (same architecture and pre-training)")) in html
    )
    assert "! stopped by the budget" in html and "✖ unfit" in html
    assert "AML.T0005.001" not in html  # the fixture's rows make no queries: no replication technique


def test_intended_use_supplied_is_quoted_without_warning():
    html = render_html(make_results(intended_use="triage of paediatric chest X-rays for pneumonia"))
    assert "triage of paediatric chest X-rays for pneumonia" in html and "Intended use not supplied" not in html


def test_autoescape_of_user_text():
    results = make_results(name="<script>alert('x')</script>")
    card = results.target.card.model_copy(update={"name": "<img src=x onerror=alert(1)>"})
    data = results.data.model_copy(update={"notes": ("<script>bad()</script>",)})
    html = render_html(
        results.model_copy(update={"target": results.target.model_copy(update={"card": card}), "data": data})
    )
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def test_missing_pieces_render_without_invented_numbers():
    """One attack, no examples, no criteria, a multilabel target (no operating point), no comparisons."""
    row = "same-imagenet-d2"
    cells = tuple(make_cell(row, "sur-a", "fgsm", e, adv, classes=3) for e, adv in ((0.01, 0.7), (0.02, 0.6)))
    surrogates = (make_surrogate(row, "sur-a"),)
    choices = (make_choice("fgsm", (0.01, 0.02), grid=(0.01, 0.02)),)
    scenario = make_scenario(gate={"threshold": 0.5}, rows={row: None})
    rules, verdict, worst = judge(scenario, cells, surrogates, choices)
    results = make_results(examples=False).model_copy(
        update={
            "scenario": scenario,
            "cells": cells,
            "surrogates": surrogates,
            "epsilon_choice": choices,
            "gate": rules,
            "verdict": verdict,
            "worst_case": worst,
            "seed_spread": (),
            "comparisons": (),
            "per_image": (),
        }
    )
    html = render_html(results)
    assert str(escape(NO_CRITERIA)) in html and "INCONCLUSIVE" in html
    assert "1 gate rule: 0 pass, 0 fail, 1 inconclusive, 0 error" in html
    assert "This run recorded no example images." in html and "No operating point recorded" in html
    assert "No per-image files recorded." in html and "Paired comparisons" not in html
    assert 'set <span class="mono">gate.min_control_relative_auc</span>' in html
    assert html.count("<svg ") == 3


def test_an_unjudged_run_renders_without_a_verdict_invented():
    results = make_results().model_copy(update={"gate": (), "verdict": "PENDING", "worst_case": None})
    html = render_html(results)
    assert "no gate rules recorded: the run was not judged" in html and "PENDING" in html
    assert "No criterion was judged" in html


def test_attack_without_admissible_epsilon_is_shown_not_filled_in():
    results = make_results()
    choices = (results.epsilon_choice[0], make_choice("pgd-step0.01-it20", ()))
    rules, verdict, worst = judge(results.scenario, results.cells, results.surrogates, choices)
    html = render_html(
        results.model_copy(update={"epsilon_choice": choices, "gate": rules, "verdict": verdict, "worst_case": worst})
    )
    assert "no ε met the perceptibility bound" in html
    assert "extend `epsilons_pm1` downward" in html and re.search(r"\bERROR\b", html)


@pytest.mark.parametrize(
    "transfer, whitebox, flag, status",
    [
        (0.50, 0.20, False, "pass"),
        (0.50, 0.53, False, "inconclusive"),  # transfer beat white-box within the slack: breaks the rule, never "ok"
        (0.50, 0.70, True, "fail"),
    ],
)
def test_whitebox_check_never_calls_a_broken_rule_ok(transfer, whitebox, flag, status):
    cell = make_cell("row", "s", "fgsm", 0.02, transfer).model_copy(
        update={"surrogate_auc_whitebox": whitebox, "whitebox_flag": flag}
    )
    assert whitebox_check(cell)[0] == status


@pytest.mark.parametrize(
    "card, expected",
    [
        (CardFields(value_range=(0.0, 1.0)), "0.01"),
        (CardFields(value_range=(0.0, 255.0)), "2.55"),
        (CardFields(mean=(0.5, 0.4), std=(0.25, 0.2)), "0.04 / 0.05"),
        (CardFields(), "not stated"),
    ],
)
def test_epsilon_in_the_targets_input_units(card, expected):
    assert native_epsilon(0.02, card) == expected


def test_report_and_gate_import_records_not_each_other():
    def imports(path: Path) -> set[str]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        }

    assert not any(m.startswith("medaudit.report") for m in imports(PACKAGE / "gate.py"))
    for module in (PACKAGE / "report").glob("*.py"):
        assert "medaudit.gate" not in imports(module), module.name
        assert "judge(" not in module.read_text(encoding="utf-8"), f"{module.name} re-judges"


def test_failed_render_leaves_previous_files_untouched(tmp_path, monkeypatch):
    import weasyprint

    (tmp_path / "report.html").write_text("old", encoding="utf-8")

    def broken(self, *args, **kwargs):
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(weasyprint.HTML, "write_pdf", broken)
    with pytest.raises(RuntimeError, match="renderer failed"):
        write_report(make_results(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == "old"


def test_centre_crop_is_nearest_neighbour():
    from PIL import Image

    image = Image.new("L", (32, 32))
    image.putpixel((12, 12), 255)  # the top-left pixel of the central 8x8
    crop = centre_crop(image)
    assert crop.size == (32, 32)
    assert crop.getpixel((0, 0)) == crop.getpixel((3, 3)) == 255 and crop.getpixel((4, 4)) == 0
    assert sorted({crop.getpixel((x, y)) for x in range(32) for y in range(32)}) == [0, 255]


def test_undefined_interval_is_shown_not_filled_in():
    results = make_results()
    cells = list(results.cells)
    cells[0] = cells[0].model_copy(update={"relative_auc": iv(0.9, float("nan"), float("nan"))})
    assert "interval undefined" in render_html(results.model_copy(update={"cells": tuple(cells)}))
