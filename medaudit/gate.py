"""The acceptance gate's outputs: exit code, junit.xml and a pull-request summary, from the recorded rules only.

`criteria.judge` decides (finalize stores its rules, verdict and worst case in `results.json`); this module
only writes them out, so junit.xml, summary.md and the PDF report the same rules and the same counts per
outcome. One output format per function, as in deepchecks' junit serializer. JUnit knows failures and errors
only: FAIL and INCONCLUSIVE are both failures there (neither meets its criterion), told apart by the failure's
type and by the per-outcome counts in the suite's properties.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from medaudit.files import atomic_write
from medaudit.results import MARKS, OUTCOMES, AuditResults, count_outcomes, fmt_interval

_EXIT = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 1, "ERROR": 2, "PENDING": 2}  # PENDING: the run was never judged


def exit_code(verdict: str) -> int:
    """PASS 0; FAIL or INCONCLUSIVE 1 (an inconclusive bound does not meet the criterion); ERROR 2."""
    if verdict not in _EXIT:
        raise ValueError(f"unknown verdict {verdict!r}")
    return _EXIT[verdict]


def counts_text(results: AuditResults) -> str:
    """`3 pass, 10 fail, 5 inconclusive, 0 error`: the same words in summary.md as on the PDF's verdict card."""
    return ", ".join(f"{n} {outcome.lower()}" for outcome, n in count_outcomes(results.gate).items())


def junit_xml(results: AuditResults) -> bytes:
    """One testcase per gate rule (name = rule id, classname = row id), with its criterion, threat and control ids."""
    rules, verdict, counts = results.gate, results.verdict, count_outcomes(results.gate)
    prov = results.provenance
    suites = ET.Element("testsuites", name="medaudit")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"medaudit gate: {results.scenario.name}",
        tests=str(len(rules)),
        skipped="0",
        timestamp=prov.finished_at or prov.started_at,
        failures=str(counts["FAIL"] + counts["INCONCLUSIVE"]),
        errors=str(counts["ERROR"]),
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", verdict),
        *((f"count_{o.lower()}", counts[o]) for o in OUTCOMES),
        ("target_path", results.target.path),
        ("target_sha256", results.target.sha256),
        ("scenario_name", results.scenario.name),
        ("scenario_file_sha256", prov.scenario_file_sha256),
        ("scenario_canonical_sha256", prov.scenario_canonical_sha256),
        ("medaudit_version", prov.medaudit_version),
        ("code_commit", prov.code_commit),
        ("results_schema_version", results.schema_version),
    ):
        ET.SubElement(props, "property", name=name, value=str(value))
    for r in rules:
        case = ET.SubElement(suite, "testcase", name=r.id, classname=r.row_id, time="0")
        case_props = ET.SubElement(case, "properties")
        for name, value in (
            ("criterion_id", r.criterion_id),
            ("threat_id", r.threat_id),
            ("control_id", r.control_id),
            ("outcome", r.status),
            ("surrogate_id", r.surrogate_id or "-"),
            ("epsilon_pm1", "-" if r.epsilon_pm1 is None else f"{r.epsilon_pm1:g}"),
        ):
            ET.SubElement(case_props, "property", name=name, value=str(value))
        detail = f"{r.criterion_id}: {r.rule}\nresult: {fmt_interval(r.value)}\n{r.status}: {r.message}"
        if r.status in ("FAIL", "INCONCLUSIVE"):
            ET.SubElement(case, "failure", type=r.status, message=f"{r.status}: {r.message}").text = detail
        elif r.status == "ERROR":
            ET.SubElement(case, "error", type="ERROR", message=r.message).text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)


def write_junit(results: AuditResults, path: str | Path) -> None:
    atomic_write(Path(path), junit_xml(results))


def _md(text: object) -> str:
    """User text made safe for a Markdown table cell (no HTML, no column breaks)."""
    return (
        str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|").replace("\n", " ")
    )


def markdown_summary(results: AuditResults) -> str:
    """A short, link-free summary for a pull-request comment: verdict, counts, every rule with its ids."""
    rules, verdict, worst = results.gate, results.verdict, results.worst_case
    counts = count_outcomes(rules)
    lines = [
        f"### medaudit verdict: {verdict} {MARKS.get(verdict, '')}".rstrip(),
        "",
        f"Scenario **{_md(results.scenario.name)}** · target `{_md(Path(results.target.path).name)}` · "
        f"sha256 `{results.target.sha256[:16]}`",
        "",
    ]
    if results.target.card.intended_use is None:
        lines += ["**! Intended use not supplied** with the target: the findings cannot be weighed against it.", ""]
    if not rules:
        lines += [f"No gate rules recorded: the run was not judged (verdict {verdict}).", ""]
    else:
        lines += [
            f"{counts_text(results)} (junit.xml: {len(rules)} tests, "
            f"{counts['FAIL'] + counts['INCONCLUSIVE']} failures = fail + inconclusive, "
            f"{counts['ERROR']} errors)",
            "",
            "| | rule id | criterion | threat | worst ε ([-1, 1]) | surrogate judged | result (95% interval) "
            "| control |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rules:
            eps = "—" if r.epsilon_pm1 is None else f"{r.epsilon_pm1:g}"
            result = f"ERROR: {r.message}" if r.status == "ERROR" else fmt_interval(r.value) if r.value else r.message
            lines.append(
                f"| {MARKS[r.status]} | `{_md(r.id)}` | {r.criterion_id} | {_md(r.threat_id)} | {eps} | "
                f"{_md(r.surrogate_id or '—')} | {_md(result)} | {r.control_id} |"
            )
        lines.append("")
    for choice in results.epsilon_choice:
        if choice.admissible_epsilons_pm1 and not choice.bound_binds:
            lines += [
                f"{_md(choice.attack_id)}: every ε in the grid met the perceptibility bound, so the grid, not "
                "perceptibility, limited ε; extend `epsilons_pm1` upward.",
                "",
            ]
    if worst is not None:
        lines += [f"**Worst case:** {_md(worst.statement)}", ""]
    return "\n".join(lines)


def write_markdown(results: AuditResults, path: str | Path) -> None:
    atomic_write(Path(path), markdown_summary(results).encode("utf-8"))
