"""Rendering the report: the record -> HTML (Jinja2, autoescaped) -> PDF/A-3b with the evidence attached."""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import jinja2
from markupsafe import Markup

from medaudit.core import atomic_write, sha256_file
from medaudit.records import AuditResults, IntervalRecord, threshold_text
from medaudit.report.annexes import ATTACHMENTS
from medaudit.report.context import build_context
from medaudit.report.units import grey, native_epsilon

# The report's numbered sections and annexes, in shared/REGULATORY.md's report order after the verdict card: each
# is one <h2> of templates/report.html.j2, and tests/test_report.py holds the template to this list
BODY_SECTIONS = (
    "Identification and scope",
    "Acceptance criteria and risk acceptability",
    "Threat model",
    "Method",
    "Results",
    "Perceptibility",
    "Residual risk",
    "Limitations",
    "Release comparison",
)
ANNEXES = (
    "Standards map",
    "Attackers",
    "Every gate rule",
    "Every cell",
    "Provenance and reproducibility",
    "References",
)
PDF_VARIANT = "pdf/a-3b"  # PDF/A-3: archival, and the only PDF/A part that carries arbitrary attached files


@dataclass(frozen=True)
class Attached:
    """One evidence file for the PDF: its name inside the PDF, where it is read from, and whether it exists."""

    name: str
    path: Path
    description: str
    relationship: str

    @property
    def present(self) -> bool:
        return self.path.is_file()


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}f}"


def _ci(value: IntervalRecord | None, digits: int = 3) -> Markup:
    """A point and its interval as markup; an undefined interval says so."""
    if value is None:
        return Markup("—")
    point = _num(value.point, digits)
    if not value.finite:
        return Markup('<span class="pt">{}</span> <span class="ci">(interval undefined)</span>').format(point)
    return Markup('<span class="pt">{}</span> <span class="ci">({}–{})</span>').format(
        point, _num(value.low, digits), _num(value.high, digits)
    )


def _eps(e: float | None) -> str:
    return "—" if e is None else f"{e:.3g}"


def _environment() -> jinja2.Environment:
    templates = files("medaudit.templates")
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: templates.joinpath(name).read_text("utf-8")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ci=_ci, num=_num, eps=_eps, grey=grey, thr=threshold_text)
    return env


def evidence_files(out_dir: Path, results_path: Path | None) -> list[Attached]:
    """results.json (the record rendered), summary.md and junit.xml from out_dir, in that order."""
    out = []
    for name, description, relationship in ATTACHMENTS:
        path = results_path if name == "results.json" and results_path is not None else out_dir / name
        out.append(Attached(name, Path(path), description, relationship))
    return out


def render_html(
    results: AuditResults, *, results_sha256: str | None = None, attached: list[Attached] | None = None
) -> str:
    """The full report as one self-contained HTML page (CSS, SVG plots and images inline)."""
    context = build_context(results, results_sha256=results_sha256, attached=attached)
    context["css"] = Markup(files("medaudit.templates").joinpath("report.css").read_text("utf-8"))
    context["svg"] = lambda s: Markup(s) if s else None  # our matplotlib output: text drawn as paths
    context["nat"] = lambda e: native_epsilon(e, results.target.card)  # ε in the target's own input units
    return _environment().get_template("report.html.j2").render(**context)


def write_report(
    results: AuditResults, out_dir: str | Path, *, results_path: str | Path | None = None
) -> tuple[Path, Path]:
    """Write `report.html` and `report.pdf` (PDF/A-3b, the evidence files attached) into out_dir; both are rendered
    before either file is replaced."""
    from weasyprint import HTML, Attachment

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = Path(results_path) if results_path is not None else None
    attached = evidence_files(out_dir, results_path)
    digest = sha256_file(results_path) if results_path is not None and results_path.is_file() else None
    html = render_html(results, results_sha256=digest, attached=attached)
    attachments = [
        Attachment(filename=str(a.path), name=a.name, description=a.description, relationship=a.relationship)
        for a in attached
        if a.present
    ]
    pdf = HTML(string=html, base_url=str(out_dir)).write_pdf(pdf_variant=PDF_VARIANT, attachments=attachments)
    html_path, pdf_path = out_dir / "report.html", out_dir / "report.pdf"
    atomic_write(html_path, html)
    atomic_write(pdf_path, pdf)
    return html_path, pdf_path
