"""The report: autoescaped HTML, graceful gaps, and a real PDF checked through poppler (pdftoppm, pdftotext)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import time

import pytest
from markupsafe import escape

from medaudit.gate import NO_CRITERIA
from medaudit.report import render_html, write_report
from medaudit.report.images import centre_crop
from medaudit.results import EpsilonChoice, write_results
from tests.fixtures_results import TARGET_SHA256, iv, make_cell, make_results


def _poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found: install Debian/Ubuntu package poppler-utils (apt-get install -y poppler-utils)")
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One real render of the fixture run, shared by the PDF checks (WeasyPrint takes seconds)."""
    out = tmp_path_factory.mktemp("audit")
    results = make_results()
    write_results(results, out / "results.json")
    start = time.perf_counter()
    html_path, pdf_path = write_report(results, out, results_path=out / "results.json")
    seconds = time.perf_counter() - start
    print(f"write_report: {seconds:.2f} s")
    return results, out, html_path, pdf_path, seconds


def test_write_report_renders_a_pdf(rendered):
    _, out, html_path, pdf_path, seconds = rendered  # render time is printed, not judged (benchmarks/ measures it)
    assert pdf_path.read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.pdf", "results.json"]  # no temp files
    pdftoppm = _poppler("pdftoppm")
    subprocess.run([pdftoppm, "-r", "50", "-png", str(pdf_path), str(out / "page")], check=True)
    pages = sorted(out.glob("page-*.png"))
    print(f"pages: {len(pages)}")
    assert len(pages) > 3


def test_pdf_text_carries_sha_verdict_and_page_numbers(rendered):
    results, out, _, pdf_path, _ = rendered
    text = subprocess.run([_poppler("pdftotext"), "-layout", str(pdf_path), "-"], check=True, capture_output=True,
                          text=True).stdout
    pages = text.split("\f")[:-1]
    assert TARGET_SHA256[:16] in text and results.verdict == "FAIL" and "FAIL" in pages[0]
    assert all(TARGET_SHA256[:16] in p for p in pages), "running header missing on a page"
    assert f"page 1 of {len(pages)}" in pages[0] and f"page {len(pages)} of {len(pages)}" in pages[-1]
    for heading in ("Identification and scope", "Threat model", "Protocol", "Results", "Perceptibility",
                    "Limitations and residual risk", "Annexes"):
        assert heading in text
    assert text.index("Robustness goal and acceptance criteria") < text.index("6 Results")
    assert "AML.T0043.002" in text and "Art. 15(5)" in text and "ML01" in text


def test_report_html_structure(rendered):
    results, out, html_path, _, _ = rendered
    html = html_path.read_text(encoding="utf-8")
    digest = hashlib.sha256((out / "results.json").read_bytes()).hexdigest()
    assert digest in html  # the results file's own sha256, in the reproducibility annex
    assert html.count("<svg ") == 3  # AUC vs epsilon, SSIM vs epsilon, relative AUC bars: inline vector
    assert html.count('src="data:image/png;base64,') == 5 * len(results.examples)
    assert "×25" in html and "×4" in html
    for rule in results.gate:  # one verdict-card row per rule, with its outcome mark
        assert rule.rule.rpartition(", ")[2].replace(" ≥ ", "\u00a0≥\u00a0").replace(" ≤ ", "\u00a0≤\u00a0") in html
    order = [html.index(f'id="{s}"') for s in ("verdict-card", "scope", "criteria", "threat-model", "protocol",
                                                "results", "perceptibility", "limitations", "annex-a")]
    assert order == sorted(order)


def test_autoescape_of_user_text():
    results = make_results(name="<script>alert('x')</script>")
    results.target["card"]["name"] = "<img src=x onerror=alert(1)>"
    results.data["notes"] = ["<script>bad()</script>"]
    html = render_html(results)
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def test_missing_pieces_render_without_invented_numbers():
    """One attack, no examples, no criteria, a multilabel target, sparse target/data records."""
    cells = [make_cell("same-random-d2", "sur-a", "fgsm", e, adv) for e, adv in ((0.01, 0.7), (0.02, 0.6))]
    for c in cells:
        c.per_class_auc_clean, c.per_class_auc_adversarial = [0.8, 0.9, 0.7], [0.6, 0.7, 0.5]
    results = make_results(gate={"specificity": 0.9}, examples=False, judged=False)
    results.cells = cells
    results.surrogates = results.surrogates[:1]
    results.surrogates[0].id = "sur-a"
    results.epsilon_choice = [EpsilonChoice(attack_id="fgsm", curve=[(0.01, 0.95), (0.02, 0.91)], bound=0.9,
                                            chosen_epsilon_pm1=0.02, reason="largest epsilon with SSIM ≥ 0.9")]
    results.target = {"path": "m.onnx", "sha256": TARGET_SHA256, "card": {"class_names": ["a", "b", "c"]}}
    results.data = {}
    results.environment, results.timings = {}, {}
    html = render_html(results)
    assert str(escape(NO_CRITERIA)) in html and "INCONCLUSIVE" in html
    assert "This run recorded no example images." in html
    assert "Per-class AUC" in html and ">b<" in html
    assert "averaged over attacks" not in html  # one attack: nothing to average
    assert "not saved" in html and "Not supplied with the target" in html
    assert html.count("<svg ") == 3


def test_attack_without_epsilon_is_shown_not_filled_in():
    results = make_results(judged=False)
    results.epsilon_choice[1].chosen_epsilon_pm1 = None
    html = render_html(results)
    assert "no ε met the perceptibility bound" in html
    assert "extend `epsilons_pm1` downward" in html and re.search(r"\bERROR\b", html)


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
    results = make_results(judged=False)
    results.cells[4].relative_auc = iv(0.9, float("nan"), float("nan"))  # pgd at the chosen epsilon, first row
    html = render_html(results)
    assert "interval undefined" in html
