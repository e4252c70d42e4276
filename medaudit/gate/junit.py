"""junit.xml: one testcase per gate rule, so CI systems show the audit as tests (deepchecks' junit serializer).

JUnit knows failures and errors only: FAIL and INCONCLUSIVE are both failures there (neither meets its
criterion), told apart by the failure's type and by the per-outcome counts in the suite's properties.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from medaudit.core import atomic_write
from medaudit.records import OUTCOMES, AuditResults, breaking_text, count_outcomes, fmt_interval


def junit_xml(results: AuditResults) -> bytes:
    """One testcase per gate rule (name = rule id, classname = threat), with its tier, criterion, threat and control."""
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
        *((f"tier_{v.tier}", f"{v.status}{' (gated)' if v.gated else ''}") for v in results.tier_verdicts),
        ("target_path", results.target.path),
        ("target_sha256", results.target.sha256),
        ("scenario_name", results.scenario.name),
        ("scenario_file_sha256", prov.scenario_file_sha256),
        ("scenario_canonical_sha256", prov.scenario_canonical_sha256),
        ("medaudit_version", prov.medaudit_version),
        ("code_commit", prov.code_commit),
        ("code_committed", prov.code_committed),
        ("results_schema_version", results.schema_version),
    ):
        ET.SubElement(props, "property", name=name, value=str(value))
    for r in rules:
        case = ET.SubElement(suite, "testcase", name=r.id, classname=r.row_id, time="0")
        case_props = ET.SubElement(case, "properties")
        for name, value in (
            ("tier", r.tier),
            ("criterion_id", r.criterion_id),
            ("threat_id", r.threat_id),
            ("control_id", r.control_id),
            ("outcome", r.status),
            ("attacker_id", r.attacker_id or "-"),
            ("epsilon_pm1", "-" if r.epsilon_pm1 is None else f"{r.epsilon_pm1:g}"),
            ("breaking_epsilon", breaking_text(r.breaking)),
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
