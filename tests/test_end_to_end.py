"""`medaudit run` end to end on real chest X-rays and a real ONNX target (tiny models, 16x16).

One module-scoped audit is shared by the assertions; a second run checks the cache and --resume.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from medaudit.cli import app
from medaudit.demo.run import build_target
from medaudit.scenario import load_scenario

SCENARIO = """
name: e2e-tiny
description: <b>escaped</b> tiny end-to-end audit
target:
  trained_on: d1
data:
  task: binary
  image_size: 16
  test_limit: 120
surrogates:
  - {arch: same, init: random, data: d2}
training: {epochs: 2, batch_size: 64, patience: 2, augment: [flip]}
attacks:
  - name: fgsm
  - {name: pgd, step_pm1: 0.01, iterations: 5}
epsilons_pm1: [0.01, 0.04]
perceptibility: {min_mean_ssim: 0.5}
bootstrap: {resamples: 200}
seed: 0
gate: {min_relative_auc: 0.99, max_adversarial_specific_drop: 0.5}
"""


@pytest.fixture(scope="module")
def audit(tmp_path_factory, pneumonia_path):
    root = tmp_path_factory.mktemp("e2e")
    scenario_path = root / "scenario.yaml"
    scenario_path.write_text(SCENARIO)
    cache = root / "cache"
    target = build_target(load_scenario(scenario_path), pneumonia_path, arch="tiny_cnn", init="random",
                          out_path=root / "target.onnx", cache_dir=cache, class_names=("normal", "pneumonia"))
    args = ["run", "--target", str(target), "--scenario", str(scenario_path), "--data", str(pneumonia_path),
            "--out", str(root / "out"), "--cache", str(cache)]
    first = CliRunner().invoke(app, args)
    return root, args, first


def test_run_writes_results_report_and_gate_files(audit):
    root, _, first = audit
    out = root / "out"
    assert first.exit_code in (0, 1), first.output
    for name in ("results.json", "report.pdf", "report.html", "junit.xml", "summary.md"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "complete" and results["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE", "ERROR")
    assert first.exit_code == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 1, "ERROR": 2}[results["verdict"]]
    assert f"verdict: {results['verdict']}" in first.output
    assert len(results["cells"]) == 2 * 2 and results["target"]["card_sources"]["value_range"] == "onnx metadata"
    assert results["target_queries"] >= 120 * (1 + 2 * 2 * 2)  # clean + (adversarial + control) per cell


def test_cells_measure_a_real_attack(audit):
    root, _, _ = audit
    results = json.loads((root / "out" / "results.json").read_text())
    by_eps = {(c["attack_id"], c["epsilon_pm1"]): c for c in results["cells"]}
    for cell in results["cells"]:
        assert cell["max_abs_delta"] <= cell["epsilon_pm1"] + 1e-6
        assert cell["auc_clean"]["low"] <= cell["auc_clean"]["point"] <= cell["auc_clean"]["high"]
        assert cell["surrogate_auc_whitebox"] < cell["surrogate_auc_clean"]  # the attack works on its own model
    strong = by_eps[("fgsm", 0.04)]
    assert strong["auc_adversarial"]["point"] < strong["auc_clean"]["point"]
    assert strong["mean_ssim"] < by_eps[("fgsm", 0.01)]["mean_ssim"]
    per_image = np.load(root / "out" / "per_image" / "clean.npz")
    assert len(per_image["scores"]) == 120


def test_pdf_names_target_hash_and_verdict(audit):
    root, _, _ = audit
    results = json.loads((root / "out" / "results.json").read_text())
    text = subprocess.run(["pdftotext", str(root / "out" / "report.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert results["target"]["sha256"][:16] in text and results["verdict"] in text
    html = (root / "out" / "report.html").read_text()
    assert "<b>escaped</b>" not in html and "&lt;b&gt;escaped&lt;/b&gt;" in html


def test_second_run_reuses_cache_and_resume_recomputes_nothing(audit):
    root, args, first = audit
    before = json.loads((root / "out" / "results.json").read_text())
    again = CliRunner().invoke(app, args + ["--resume", "--no-report"])
    assert again.exit_code == first.exit_code, again.output
    after = json.loads((root / "out" / "results.json").read_text())
    assert all(s["from_cache"] for s in after["surrogates"])
    assert [c["seconds"] for c in after["cells"]] == [c["seconds"] for c in before["cells"]]  # not recomputed
    assert [c["auc_adversarial"] for c in after["cells"]] == [c["auc_adversarial"] for c in before["cells"]]


def test_report_command_rerenders_from_results_alone(audit):
    root, _, first = audit
    (root / "out" / "report.pdf").unlink()
    result = CliRunner().invoke(app, ["report", str(root / "out" / "results.json")])
    assert result.exit_code == first.exit_code and (root / "out" / "report.pdf").is_file()


def test_resume_refuses_a_changed_scenario(audit):
    root, args, _ = audit
    changed = root / "changed.yaml"
    changed.write_text(SCENARIO.replace("seed: 0", "seed: 1"))
    args = [a if a != str(root / "scenario.yaml") else str(changed) for a in args]
    result = CliRunner().invoke(app, args + ["--resume", "--no-report"])
    assert result.exit_code == 2 and "cannot resume: the scenario changed" in result.output


def test_cache_still_hits_after_it_is_moved(audit):
    import shutil

    root, args, first = audit
    moved = root / "moved-cache"
    shutil.copytree(root / "cache", moved)
    shutil.rmtree(root / "cache")
    args = [a if a != str(root / "cache") else str(moved) for a in args]
    again = CliRunner().invoke(app, args[:args.index("--out") + 1] + [str(root / "out-moved")] +
                               args[args.index("--out") + 2:] + ["--no-report"])
    assert again.exit_code == first.exit_code, again.output
    results = json.loads((root / "out-moved" / "results.json").read_text())
    assert all(s["from_cache"] for s in results["surrogates"])
