"""The risk-file view (ISO 14971 as AAMI TIR34971 applies it to ML): threat -> hazardous situation -> possible harm ->
measured effect -> suggested control, with the ids results.json, junit.xml and summary.md also carry; and the
report's reference list (only sources shared/REGULATORY.md names)."""

from __future__ import annotations

from medaudit.criteria import CONTROLS, CRITERIA, WORST_OVER_ATTACKS
from medaudit.report.tables import judged_cell, repeated_rule
from medaudit.results import AuditResults, GateRule, fmt_interval

REFERENCES = (
    (
        "Bortsova 2021",
        "Bortsova G, González-Gonzalo C, et al. Adversarial attack vulnerability of medical image "
        "analysis systems: Unexplored factors. Medical Image Analysis, 2021.",
    ),
    (
        "NIST AI 100-2",
        "NIST AI 100-2 E2025. Adversarial Machine Learning: A Taxonomy and Terminology of Attacks and "
        "Mitigations (attacker goal, knowledge, capabilities; §2.2.3 transferability).",
    ),
    (
        "MITRE ATLAS",
        "MITRE ATLAS: AML.T0043.002 Craft Adversarial Data: Black-Box Transfer; AML.T0005 Create Proxy "
        "AI Model (.000 gathered artifacts, .001 replication, .002 pre-trained model).",
    ),
    ("OWASP ML01", "OWASP Machine Learning Security Top 10 (2023): ML01 Input Manipulation Attack."),
    (
        "EU AI Act Art. 15",
        "Regulation (EU) 2024/1689 (AI Act), Article 15: accuracy, robustness and cybersecurity; "
        "15(3) declared accuracy metrics, 15(5) resilience to adversarial examples or model "
        "evasion.",
    ),
    (
        "ISO/IEC TR 24029-1",
        "ISO/IEC TR 24029-1:2021. Artificial intelligence: assessment of the robustness of neural "
        "networks, Part 1: overview (robustness goals, test plan, protocol); ISO/IEC DIS 24029-3 "
        "(draft): statistical methods.",
    ),
    (
        "prEN 18282",
        "prEN 18282 (draft): cybersecurity specifications for AI systems: objective criteria to decide "
        "whether a vulnerability goal is met.",
    ),
    (
        "AAMI TIR34971",
        "AAMI TIR34971: application of ISO 14971 to machine learning in artificial intelligence "
        "(hazards, hazardous situations, harms).",
    ),
    (
        "FDA AI-enabled DSF",
        "FDA draft guidance: Artificial Intelligence-Enabled Device Software Functions (Jan 2025), "
        "cybersecurity section: model evasion, known limitations, model card (per summaries).",
    ),
    (
        "FDA cybersecurity",
        "FDA guidance: Cybersecurity in Medical Devices, premarket submissions (2023, updated 2025): "
        "threat model, controls and traceable verification evidence.",
    ),
    (
        "GMLP",
        "Good Machine Learning Practice guiding principles (FDA, Health Canada, MHRA 2021; IMDRF N88 2025): "
        "P4 independent test data, P8 statistically sound test plans, P9 known limitations.",
    ),
)


def risk_rows(results: AuditResults, threat_levels: dict[str, str]) -> list[dict]:
    """One line per threat (scenario row) and stated criterion, from the row's worst rule over attacks."""
    criteria = {c.id: c for c in CRITERIA}
    groups: dict[tuple[str, str], list[GateRule]] = {}
    for r in results.gate:
        if r.criterion_id in criteria:
            groups.setdefault((r.row_id, r.criterion_id), []).append(r)
    out = []
    for (row_id, criterion_id), rules in groups.items():
        criterion = criteria[criterion_id]
        summary = next((r for r in rules if r.attack_id == WORST_OVER_ATTACKS), rules[0])
        attack_rule = repeated_rule(rules, summary)
        cell = judged_cell(results, attack_rule)
        if summary.status == "ERROR":
            effect = f"not measured: {summary.message}"
        else:
            effect = (
                f"{criterion.endpoint} {fmt_interval(summary.value)} with {attack_rule.attack_id} at "
                f"ε {summary.epsilon_pm1:g}"
            )
            if cell is not None and cell.operating_point is not None:
                op = cell.operating_point
                lost, made = (
                    (op.true_positives_lost_control, op.false_positives_created_control)
                    if criterion_id == "C-NOISE"
                    else (op.true_positives_lost, op.false_positives_created)
                )
                effect += (
                    f"; at threshold {op.threshold:.3g}: {lost} true positives lost, {made} false positives created"
                )
        out.append(
            {
                "threat_id": summary.threat_id,
                "row_id": row_id,
                "threat": threat_levels.get(row_id, ""),
                "criterion": criterion,
                "rule": summary,
                "effect": effect,
                "control_id": criterion.control_id,
                "control": CONTROLS[criterion.control_id],
            }
        )
    return out
