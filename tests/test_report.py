"""The report: page 1 says what summary.md says, the body stays short, nothing is said more than three times, every
word lies on its page, and the PDF is PDF/A-3b with its evidence inside. Facts are checked in a real PDF of the largest
shipped shape (poppler's pdftotext), rendered once for the module; smaller checks read the autoescaped HTML."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest
from markupsafe import escape

from medaudit.gate.junit import write_junit
from medaudit.gate.markdown import counts_text, write_markdown
from medaudit.records.results import write_results
from medaudit.report.images import centre_crop
from medaudit.report.render import ANNEXES, BODY_SECTIONS, evidence_files, render_html, write_report
from medaudit.report.units import native_epsilon
from medaudit.scenario.threat_model import CardFields
from tests.fixtures_results import (
    CODE_COMMIT,
    LARGE_ACCEPTABILITY,
    LARGE_RATIONALE,
    iv,
    make_large_results,
    make_results,
)

PACKAGE = Path(__file__).parents[1] / "medaudit"
BODY_PAGES = 20  # pages before the first annex, for a shipped scenario's record
MAX_REPEATS = 3  # the most times one sentence may appear in the PDF
ALLOWED_IMPORTS = ("medaudit.records", "medaudit.core", "medaudit.report")  # .importlinter holds the same rule
PLAIN_WORD = re.compile(r"^\(?[A-Za-z][a-z'’-]*[a-z][.,;:!?)]*$")


def _poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found: install Debian/Ubuntu package poppler-utils (apt-get install -y poppler-utils)")
    return path


def _text(pdf: Path, *args: str) -> str:
    return subprocess.run(
        [_poppler("pdftotext"), *args, str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """One real render of the largest shipped shape, with the junit.xml and summary.md publish writes first."""
    out = tmp_path_factory.mktemp("audit")
    results = make_large_results()
    write_results(results, out / "results.json")
    write_junit(results, out / "junit.xml")
    write_markdown(results, out / "summary.md")
    html_path, pdf_path = write_report(results, out, results_path=out / "results.json")
    # -raw keeps a table cell's lines together and never drops a hyphen at a line break (ids stay whole)
    pages = _text(pdf_path, "-raw").split("\f")[:-1]
    return results, out, html_path, pdf_path, pages


def _flat(text: str) -> str:
    return " ".join(text.split())


def _squash(text: str) -> str:
    """Text without whitespace, so ids and hashes broken over lines match."""
    return "".join(text.split())


def sentences(pages: list[str]) -> list[str]:
    """The PDF's sentences: text blocks (blank-line separated, running header and footer removed) split after . ! ? or
    ;, keeping pieces of at least four plain words, so table numbers and ids do not count as prose."""
    lines = [{line.strip() for line in page.splitlines() if line.strip()} for page in pages]
    furniture = {line for line in set().union(*lines) if sum(line in s for s in lines) > max(1, len(pages) / 2)}
    out = []
    for page in pages:
        for block in re.split(r"\n\s*\n", page):
            flat = _flat(" ".join(line for line in block.splitlines() if line.strip() not in furniture))
            out += [
                s for s in re.split(r"(?<=[.!?;])\s+", flat) if sum(map(bool, map(PLAIN_WORD.match, s.split()))) >= 4
            ]
    return out


def pdf_objects(raw: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    """Object number -> (its dictionary, its decoded stream or None), objects packed in object streams included."""
    out: dict[int, tuple[bytes, bytes | None]] = {}
    for m in re.finditer(rb"(\d+) 0 obj\s*", raw):
        body = raw[m.end() : raw.find(b"endobj", m.end())]
        start = re.search(rb"stream\r?\n", body)
        if start is None:
            out[int(m.group(1))] = (body, None)
            continue
        head = body[: start.start()]
        data = body[start.end() : start.end() + int(re.search(rb"/Length (\d+)", head).group(1))]
        out[int(m.group(1))] = (head, zlib.decompress(data) if b"/FlateDecode" in head else data)
    for head, data in list(out.values()):
        if data is not None and b"/ObjStm" in head:
            first = int(re.search(rb"/First (\d+)", head).group(1))
            numbers = list(map(int, data[:first].split()))
            pairs = list(zip(numbers[::2], numbers[1::2]))
            ends = [offset for _, offset in pairs[1:]] + [len(data) - first]
            for (number, offset), end in zip(pairs, ends):
                out.setdefault(number, (data[first + offset : first + end], None))
    return out


def embedded_files(raw: bytes) -> dict[str, tuple[bytes, bytes]]:
    """Attachment name -> (its bytes, its file specification), read from the PDF's /Filespec and /EmbeddedFile objects."""
    objects = pdf_objects(raw)
    out = {}
    for body, _ in objects.values():
        if b"/Type /Filespec" in body:
            name = re.search(rb"/F \(([^)]*)\)", body).group(1).decode()
            stream = int(re.search(rb"/EF\s*<<\s*/F (\d+) 0 R", body).group(1))
            out[name] = (objects[stream][1], body)
    return out


def test_write_report_writes_html_and_pdf_only(large):
    _, out, _, pdf_path, pages = large
    assert pdf_path.read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in out.iterdir()) == [
        "junit.xml",
        "report.html",
        "report.pdf",
        "results.json",
        "summary.md",
    ]
    assert f"page 1 of {len(pages)}" in pages[0] and f"page {len(pages)} of {len(pages)}" in pages[-1]


def test_pdf_is_pdfa_3b_with_results_summary_and_junit_attached(large):
    _, out, _, pdf_path, _ = large
    raw = pdf_path.read_bytes()
    metadata = b"".join(data for _, data in pdf_objects(raw).values() if data is not None and b"pdfaid" in data)
    assert re.search(rb'pdfaid:part(="|>)3', metadata) and re.search(rb'pdfaid:conformance(="|>)B', metadata)
    attached = embedded_files(raw)
    assert set(attached) == {"results.json", "summary.md", "junit.xml"}
    for name, (data, spec) in attached.items():
        assert data == (out / name).read_bytes(), name
    assert b"/AFRelationship /Source" in attached["results.json"][1]


def test_page_one_is_the_verdict_card(large):
    results, out, _, _, pages = large
    first = _flat(pages[0])
    assert f"{results.verdict} ✖" in first and "decided by the gated tiers (transfer)" in first
    assert counts_text(results) in first and counts_text(results) in (out / "summary.md").read_text(encoding="utf-8")
    assert "Not for submission" in first
    anomalies = {f"open anomaly {a.id}: {a.text}": a.id for a in results.anomalies}
    assert len(anomalies) == 2  # a gradient-masking sign and a second anomaly
    for reason in results.readiness.reasons:
        assert (f"open anomaly {anomalies[reason]}" if reason in anomalies else _flat(reason)) in first, reason
    squashed = _squash(pages[0])
    for row in results.verdict_rows:
        assert _squash(row.result) in squashed
    assert len(results.verdict_rows) == 9
    assert {row.status for row in results.verdict_rows} >= {"PASS", "FAIL", "INCONCLUSIVE"}
    assert all(
        len(row.reason.split()) <= 15 for row in results.verdict_rows
    )  # page 1 gives a reason in 15 words at most
    repeated = "limit and monitor score access; harden the model and re-audit"  # rows 4 and 5
    assert first.count(repeated) == 1 and "as row 4" in first  # a repeated next step refers to its first row
    for a in results.anomalies:
        assert _squash(f"{a.id}: {a.text}") in squashed
    assert f"“{results.target.card.intended_use}”" in first
    assert _squash(results.worst_case.statement) in squashed
    assert "1 Identification and scope" not in first  # nothing else on page 1


def test_every_rule_id_is_in_the_pdf_and_in_junit(large):
    results, out, _, _, pages = large
    squashed = _squash("\n".join(pages))
    junit = (out / "junit.xml").read_text(encoding="utf-8")
    for rule in results.gate:
        assert _squash(rule.id) in squashed and f'name="{rule.id}"' in junit, rule.id


def test_body_before_the_annexes_is_at_most_twenty_pages(large):
    _, _, _, _, pages = large
    annex = next(k for k, page in enumerate(pages) if "Annex A. Standards map" in page)
    assert annex <= BODY_PAGES, f"{annex} body pages"
    text = "\f".join(pages)
    headings = [
        "1 Identification and scope",
        "2 Acceptance criteria and risk acceptability",
        "3 Threat model",
        "4 Method",
        "5 Results",
        "6 Perceptibility",
        "7 Residual risk",
        "8 Limitations",
        "9 Release comparison",
        "Annex A. Standards map",
        "Annex B. Attackers",
        "Annex C. Every gate rule",
        "Annex D. Every cell",
        "Annex E. Provenance and reproducibility",
        "Annex F. References",
    ]
    positions = [text.index(h) for h in headings]
    assert positions == sorted(positions)


def test_no_sentence_appears_more_than_three_times(large):
    counts = Counter(sentences(_text(large[3]).split("\f")[:-1]))  # pdftotext's blocks: paragraphs and cells
    sentence, n = counts.most_common(1)[0]
    assert n <= MAX_REPEATS, f"{n}× {sentence!r}"
    assert len(counts) > 100  # the splitter found the prose


def test_every_word_lies_inside_its_page(large):
    """No table or figure runs off its page: every word's box lies within the page, 8 mm inside its left and right."""
    pdf_path = large[3]
    margin = 8 * 72 / 25.4
    outside, page = [], None
    tokens = re.finditer(
        r'<page width="([\d.]+)" height="([\d.]+)">|'
        r'<word xMin="([-\d.]+)" yMin="([-\d.]+)" xMax="([-\d.]+)" yMax="([-\d.]+)">(.*?)</word>',
        _text(pdf_path, "-bbox"),
    )
    for m in tokens:
        if m.group(1):
            page = (float(m.group(1)), float(m.group(2)))
            continue
        x0, y0, x1, y1 = map(float, m.group(3, 4, 5, 6))
        if x0 < margin or x1 > page[0] - margin or y0 < 0 or y1 > page[1]:
            outside.append((m.group(7), x0, x1, y0, y1, page))
    assert not outside, outside[:5]


def test_commit_text_is_the_same_on_page_one_and_in_the_provenance_annex(large):
    results, _, _, _, pages = large
    assert not results.provenance.code_committed
    annex = next(page for page in pages if "Annex E. Provenance" in page)
    marked = f"{CODE_COMMIT}+uncommitted"
    assert marked in _squash(pages[0]) and marked in _squash(annex)
    clean = render_html(make_results())
    assert CODE_COMMIT in clean and "+uncommitted" not in clean


def test_method_states_how_intervals_were_resampled():
    large_html = render_html(make_large_results())
    assert "patient-clustered: patients are resampled with all their images" in large_html
    small = render_html(make_results())
    assert "image-level: images are resampled one by one" in small and "patient-clustered" not in small


def test_threshold_rule_and_acceptance_texts_are_quoted(large):
    results, _, _, _, pages = large
    flat = _flat("\n".join(pages))
    assert _flat(results.target.threshold_rule) in flat
    for text in LARGE_RATIONALE.values():
        assert str(escape(text)) in large[2].read_text(encoding="utf-8")
    assert f"“{_flat(LARGE_ACCEPTABILITY)}”" in flat
    assert flat.count("no rationale stated") == 1  # the noise criterion's threshold has none


def test_absent_rationale_and_acceptability_are_said_absent():
    html = render_html(make_results())
    assert html.count("no rationale stated") == 3 and "<strong>Not stated</strong> (scenario" in html


def test_standards_map_names_each_framework(large):
    annex = _flat(next(page for page in large[4] if "Annex A. Standards map" in page))
    for clause in (
        "EU MDR 2017/745 Annex I §17.2",
        "EU MDR 2017/745 Annex I §17.4",
        "MDCG 2019-16",
        "IEC 81001-5-1:2021 §5.7",
        "AAMI TIR57:2016/(R)2023",
        "ISO 14971:2019 §7–8",
        "NIST AI 100-2",
        "EU AI Act",
        "prEN 18282",
    ):
        assert clause in annex, clause


def test_examples_are_distinct_images_with_their_direction(large):
    results, _, _, _, pages = large
    indices = [e.image_index for e in results.examples]
    assert len(indices) == len(set(indices)) == 6
    flat = _flat("\n".join(pages))
    for e in results.examples:
        head = f"Image {e.image_index} "
        assert flat.count(head) == 1
        shown = flat[flat.index(head) :][:300]
        assert e.direction in shown and f"{e.score_clean:.3f} → {e.score_adversarial:.3f}" in shown
        assert f"threshold {e.threshold:.3f}" in shown and f"×{e.amplification:g}" in flat
    assert {"positive pushed negative", "negative pushed positive"} <= {e.direction for e in results.examples}


def test_an_unfit_attacker_is_never_called_fit(large):
    results, _, html_path, _, pages = large
    flat = _flat("\n".join(pages))
    assert "most harmful fit" not in flat
    # the last row's FGSM attackers are all unfit: its lines say so instead of naming a fit attacker
    assert "no fit attacker; not evidence (shown: ensemble of 3 (resnet18), no transfer)" in flat


def test_residual_risk_per_threat_and_limitations(large):
    results, _, _, _, pages = large
    section = _squash("\n".join(pages))
    section = section[section.index("7Residualrisk") : section.index("8Limitations")]
    for threat in dict.fromkeys(r.threat_id for r in results.gate):
        assert f"{threat}:" in section or f"of{threat}" in section or f"for{threat}" in section, threat
    flat = _flat("\n".join(pages))
    assert "possible gradient masking (anomaly A-MASKING on page 1)" in flat


def test_release_comparison_only_when_present(large):
    assert "9 Release comparison" in "\n".join(large[4])
    assert "Release comparison" not in render_html(make_results())


def test_user_text_is_escaped():
    results = make_results(name="<b>bold</b>")
    scenario = results.scenario.model_copy(update={"description": "<b>desc</b> & <script>x()</script>"})
    card = results.target.card.model_copy(update={"intended_use": "<img src=x onerror=alert(1)>"})
    html = render_html(
        results.model_copy(update={"scenario": scenario, "target": results.target.model_copy(update={"card": card})})
    )
    assert "<b>" not in html and "<script" not in html and "<img src=x" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "&lt;b&gt;desc&lt;/b&gt; &amp; &lt;script&gt;" in html


def test_ready_record_and_unjudged_record_say_so():
    ready = make_results(intended_use="triage of chest X-rays")
    assert ready.readiness.ready and "Ready for submission" in render_html(ready)
    pending = ready.model_copy(update={"gate": (), "verdict_rows": (), "verdict": "PENDING", "worst_case": None})
    html = render_html(pending)
    assert "No criterion was judged" in html and "PENDING" in html


def test_missing_evidence_file_is_named_not_skipped(tmp_path):
    (tmp_path / "junit.xml").write_text("<testsuites/>", encoding="utf-8")
    attached = evidence_files(tmp_path, None)
    html = render_html(make_results(), attached=attached)
    assert [a.name for a in attached if a.present] == ["junit.xml"]
    assert html.count("no: not found beside the results") == 2


def test_undefined_interval_is_shown_not_filled_in():
    results = make_results()
    cells = list(results.cells)
    cells[0] = cells[0].model_copy(update={"relative_auc": iv(0.9, float("nan"), float("nan"))})
    assert "interval undefined" in render_html(results.model_copy(update={"cells": tuple(cells)}))


def test_report_only_reads_records():
    for module in (PACKAGE / "report").glob("*.py"):
        source = module.read_text(encoding="utf-8")
        assert len(source.splitlines()) < 400, module.name
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                node.body = []  # names for annotations only, never imported at run time
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("medaudit"):
                assert node.module.startswith(ALLOWED_IMPORTS), (module.name, node.module)
        assert "judge(" not in source, f"{module.name} re-judges"


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


def test_sentence_splitter_counts_prose_not_tables():
    pages = ["a table 0.91 0.92\n\nThe attack flips the decision. The attack flips the decision; ids C-REL-AUC\n"]
    assert Counter(sentences(pages)) == Counter(
        {"The attack flips the decision.": 1, "The attack flips the decision;": 1}
    )


def test_the_template_has_every_section_in_order():
    """A section enrols in BODY_SECTIONS (or ANNEXES) and in the template, in the same place in both."""
    template = (Path(__file__).resolve().parents[1] / "templates" / "report.html.j2").read_text()
    headings = re.findall(r"<h2>(.*?)</h2>", template)
    expected = [f"{i} {s}" for i, s in enumerate(BODY_SECTIONS, 1)]
    expected += [f"Annex {chr(ord('A') + i)}. {s}" for i, s in enumerate(ANNEXES)]
    assert headings == expected


def test_the_white_box_checks_are_shown_and_an_unverified_bound_says_so():
    results = make_large_results()
    html = render_html(results)
    assert "Checks that the white-box attack is a bound" in html and "a verified bound" in html
    assert html.count("<td>convergence</td>") == 1 and html.count("<td>reach</td>") == 1
    whitebox = next(i for i, v in enumerate(results.tier_verdicts) if v.tier == "whitebox")
    text = "not a verified bound: it fails reach at ε 0.5 on 64 images: AUC 0.400 (at most 0.05)"
    verdicts = list(results.tier_verdicts)
    verdicts[whitebox] = verdicts[whitebox].model_copy(update={"unverified": text})
    unverified = render_html(results.model_copy(update={"tier_verdicts": tuple(verdicts)}))
    assert f"The white-box result is {text}</strong>" in unverified


MIN_PAGE_LINES = 25  # text lines a page carries unless it is the last page of its section
FULL_TO = 0.8  # ... or its text reaches this share of the page's body height (a page of figures and images)
BODY_MM = (17, 15)  # the @page top and bottom margins: the running header and footer lie outside


def test_pages_are_full_unless_a_section_ends_on_them(large):
    """No mostly-empty page: apart from a section's last page (the next page opens a section), every page carries at
    least MIN_PAGE_LINES lines of text between its running header and footer (pdftotext -layout), or, where figures
    and images fill it, its text runs down to FULL_TO of the body (pdftotext -bbox)."""
    pdf = large[3]
    pages = _text(pdf, "-layout").split("\f")[:-1]
    heading = re.compile(r"^\s*(\d+ [A-Z][a-z]|Annex [A-F]\. )")
    bodies = [[line for line in page.splitlines() if line.strip()][1:-1] for page in pages]
    reach = []
    for page in re.split(r"<page ", _text(pdf, "-bbox"))[1:]:
        height = float(re.search(r'height="([\d.]+)"', page).group(1))
        top, bottom = (mm * 72 / 25.4 for mm in BODY_MM)
        ys = [float(y) for y in re.findall(r'yMax="([\d.]+)"', page) if top < float(y) < height - bottom]
        reach.append((max(ys, default=top) - top) / (height - top - bottom))
    short = [
        (k + 1, len(body), round(reach[k], 2))
        for k, body in enumerate(bodies[:-1])
        if len(body) < MIN_PAGE_LINES and reach[k] < FULL_TO and not (bodies[k + 1] and heading.match(bodies[k + 1][0]))
    ]
    assert not short, short


def test_page_one_counts_its_rows_and_names_the_attackers_space(large):
    results, _, _, _, pages = large
    first = _flat(pages[0])
    n = int(re.search(r"(\d+) rows?: ", first).group(1))
    assert n == len(results.verdict_rows)
    assert " rules" not in first  # page 1 counts the rows it shows, not the gate rules behind them
    assert "Attacker's space: 64×64 px, grey, 8-bit source, no resize; delivered as 8-bit files" in first
    assert "white-box (reported; verified)" in first or "white-box (reported; not a verified bound)" in first


def test_one_meaning_per_word(large):
    text = _flat("\n".join(large[4]))
    for banned in ("upper bound", "perceptibility bound", "(bound)", "bound's ε", "as bounds", "bound tier"):
        assert banned not in text, banned
    assert "Glossary" in text and "budget the perceptibility limit" in text


def test_claims_agree_with_the_record(large):
    results, _, _, pdf_path, pages = large
    text = _flat("\n".join(pages))
    assert results.data.patient_level and "patient-clustered" in text  # this record has patient ids
    image_level = _flat(re.sub(r"<[^>]+>", " ", render_html(make_results())))  # this one has none
    assert "patient-level" not in image_level and "patient-clustered" not in image_level
    assert "image-level" in image_level
    embedded = set(embedded_files(pdf_path.read_bytes()))
    for name in re.findall(r"the attached (\S+?\.(?:json|md|xml))", text):
        assert name in embedded, name
    assert "not embedded in this PDF" in text  # the per-image files are beside the record, and it says so
    assert "C-NOISE" in text and results.scenario.gate.min_control_relative_auc is not None


def test_annexes_name_only_the_attacks_that_ran():
    from medaudit.report.standards import references, standards_rows

    answer = next(a for i, _, _, a in standards_rows(["fgsm", "apgd", "fgsm"]) if i == "MDR-17.2")
    assert answer.endswith("per tier (section 4): FGSM, APGD from AutoAttack")
    keys = {k for k, _ in references(["fgsm", "apgd"])}
    assert {"Goodfellow 2015", "Croce & Hein 2020"} <= keys and not {"Dong 2018", "Madry 2018"} & keys


def test_an_unstated_criterion_is_not_on_the_card():
    results = make_results(gate={"min_relative_auc": 0.8})
    html = render_html(results)
    assert "Not stated by the scenario, so neither on the card nor judged: C-ADV-DROP" in html
    assert "not stated, not judged" not in html


def test_residual_risk_is_concluded_per_hazard_with_a_sign_off(large):
    results, _, _, _, pages = large
    text = _flat("\n".join(pages))
    rows = {r.criterion_id: r.status for r in results.verdict_rows if r.gated}
    words = {"PASS": "Acceptable:", "FAIL": "Not acceptable:", "INCONCLUSIVE": "Not shown acceptable:"}
    for status in set(rows.values()):
        assert words[status] in text
    assert "Name and role:" in text and "Signature:" in text
