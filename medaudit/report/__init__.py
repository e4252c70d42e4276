"""The regulator-facing report: `results.json` -> HTML (Jinja2, autoescaped) -> PDF (WeasyPrint).

The report only reads the results record, so `medaudit report results.json` re-renders a run
without recomputing. Section order follows shared/REGULATORY.md ("Report order"): verdict card, scope, criteria, threat
model, protocol, results, perceptibility, risk file, limitations, annexes, references. It reads the gate's
recorded rules and never judges; it imports records, not the gate.
"""

from __future__ import annotations

import math
from importlib.resources import files
from pathlib import Path

import jinja2
from markupsafe import Markup

from medaudit.files import atomic_write, sha256_file
from medaudit.report.context import build_context
from medaudit.report.units import grey, native_epsilon
from medaudit.results import AuditResults, IntervalRecord, threshold_text

__all__ = ["render_html", "write_report"]


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}f}"


def _ci(value: IntervalRecord | float | None, digits: int = 3, scale: float = 1.0) -> Markup:
    """A point and its 95% interval as markup; a bare float (an average) shows no interval."""
    if value is None:
        return Markup("—")
    if not isinstance(value, IntervalRecord):
        return Markup('<span class="pt">{}</span>').format(
            _num(value * scale if math.isfinite(value) else value, digits)
        )
    point = _num(value.point * scale, digits)
    if not (math.isfinite(value.low) and math.isfinite(value.high)):
        return Markup('<span class="pt">{}</span> <span class="ci">(interval undefined)</span>').format(point)
    return Markup('<span class="pt">{}</span> <span class="ci">({}, {})</span>').format(
        point, _num(value.low * scale, digits), _num(value.high * scale, digits)
    )


def _pct(value: IntervalRecord | float | None) -> Markup:
    return _ci(value, digits=1, scale=100.0)


def _eps(e: float | None) -> str:
    return "—" if e is None else f"{e:g}"


def _grey(e: float | None) -> str:
    return grey(e)


def _environment() -> jinja2.Environment:
    templates = files("medaudit.templates")
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: templates.joinpath(name).read_text("utf-8")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ci=_ci, pct=_pct, num=_num, eps=_eps, grey=_grey, thr=threshold_text)
    return env


def render_html(results: AuditResults, *, results_sha256: str | None = None) -> str:
    """The full report as one self-contained HTML page (CSS, SVG plots and images inline)."""
    env = _environment()
    context = build_context(results, results_sha256=results_sha256)
    context["css"] = Markup(files("medaudit.templates").joinpath("report.css").read_text("utf-8"))
    context["svg"] = lambda s: Markup(s) if s else None  # our matplotlib output: text drawn as paths
    context["nat"] = lambda e: native_epsilon(e, results.target.card)  # ε in the target's own input units
    return env.get_template("report.html.j2").render(**context)


def write_report(
    results: AuditResults, out_dir: str | Path, *, results_path: str | Path | None = None
) -> tuple[Path, Path]:
    """Write `report.html` and `report.pdf` into out_dir; both are rendered before either file is replaced."""
    from weasyprint import HTML

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    digest = sha256_file(results_path) if results_path is not None else None
    html = render_html(results, results_sha256=digest)
    pdf = HTML(string=html, base_url=str(out_dir)).write_pdf()
    html_path, pdf_path = out_dir / "report.html", out_dir / "report.pdf"
    atomic_write(html_path, html)
    atomic_write(pdf_path, pdf)
    return html_path, pdf_path
