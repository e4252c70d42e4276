"""The acceptance gate: scenario thresholds judged on 95% interval bounds, then exit code, JUnit and a PR summary.

A criterion passes only when its judged bound meets it (ISO/IEC 24029 "objective criteria", prEN 18282):
`min_relative_auc` on the lower bound of adversarial/clean AUC, `max_adversarial_specific_drop` on the
upper bound of control - adversarial AUC. An interval that straddles the threshold is INCONCLUSIVE and
does not meet the criterion. Conditions are named by their rule, as in deepchecks' condition results.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from medaudit.files import atomic_write
from medaudit.results import AuditResults, CellRecord, GateRule, IntervalRecord

NO_CRITERIA = ("No acceptance criteria were stated: the scenario's `gate` sets neither min_relative_auc nor "
               "max_adversarial_specific_drop, so nothing was judged and the verdict is INCONCLUSIVE. "
               "State the criteria in the scenario before the run.")
MARKS = {"PASS": "✓", "FAIL": "✖", "INCONCLUSIVE": "!", "ERROR": "ERROR", "PENDING": "…"}
_EXIT = {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 1, "ERROR": 2, "PENDING": 2}
_WORST_ATTACK = "worst-over-attacks"


def threshold_text(x: float) -> str:
    """A threshold for a rule text: at least two decimals, no trailing noise (0.8 -> 0.80, 0.825 -> 0.825)."""
    s = f"{x:.3f}".rstrip("0")
    return s + "0" * max(0, 2 - len(s.split(".")[1]))


def _finite(iv: IntervalRecord) -> bool:
    return all(math.isfinite(v) for v in (iv.point, iv.low, iv.high))


def fmt_interval(iv: IntervalRecord | None) -> str:
    if iv is None:
        return "—"
    if not _finite(iv):
        return f"{iv.point:.3f} (interval undefined)"
    return f"{iv.point:.3f} ({iv.low:.3f}, {iv.high:.3f})"


def _judge_at_least(iv: IntervalRecord, t: float) -> tuple[str, str]:
    if iv.low >= t:
        return "PASS", f"lower bound {iv.low:.3f} ≥ {threshold_text(t)}"
    if iv.high < t:
        return "FAIL", f"the whole interval ({iv.low:.3f}, {iv.high:.3f}) lies below {threshold_text(t)}"
    return "INCONCLUSIVE", (f"interval ({iv.low:.3f}, {iv.high:.3f}) straddles {threshold_text(t)}: the lower bound misses it, "
                            f"the upper bound meets it (point {iv.point:.3f})")


def _judge_at_most(iv: IntervalRecord, t: float) -> tuple[str, str]:
    if iv.high <= t:
        return "PASS", f"upper bound {iv.high:.3f} ≤ {threshold_text(t)}"
    if iv.low > t:
        return "FAIL", f"the whole interval ({iv.low:.3f}, {iv.high:.3f}) lies above {threshold_text(t)}"
    return "INCONCLUSIVE", (f"interval ({iv.low:.3f}, {iv.high:.3f}) straddles {threshold_text(t)}: the upper bound misses it, "
                            f"the lower bound meets it (point {iv.point:.3f})")


def _criteria(results: AuditResults) -> list[tuple[str, str, str, float]]:
    """(key, cell field, rule text, threshold) for each threshold the scenario sets."""
    gate = results.scenario.get("gate") or {}
    conf = f"{100 * (results.scenario.get('bootstrap') or {}).get('confidence', 0.95):g}%"
    out = []
    if gate.get("min_relative_auc") is not None:
        t = float(gate["min_relative_auc"])
        out.append(("min-relative-auc", "relative_auc",
                    f"relative AUC (adversarial/clean), lower {conf} bound ≥ {threshold_text(t)}", t))
    if gate.get("max_adversarial_specific_drop") is not None:
        t = float(gate["max_adversarial_specific_drop"])
        out.append(("max-adversarial-specific-drop", "adversarial_specific_drop",
                    f"adversarial-specific AUC drop (control − adversarial), upper {conf} bound ≤ {threshold_text(t)}", t))
    return out


def chosen_epsilons(results: AuditResults) -> dict[str, float | None]:
    """Attack id -> chosen epsilon ([-1, 1] units); None where no epsilon met the perceptibility bound."""
    chosen = {c.attack_id: c.chosen_epsilon_pm1 for c in results.epsilon_choice}
    for cell in results.cells:
        chosen.setdefault(cell.attack_id, None)
    return chosen


def surrogates_by_row(results: AuditResults) -> dict[str, list[str]]:
    """Scenario row id -> surrogate ids, in run order (from the surrogate table, then from the cells)."""
    rows: dict[str, list[str]] = {}
    for s in results.surrogates:
        rows.setdefault(s.row_id, []).append(s.id)
    for c in results.cells:
        if c.surrogate_id not in rows.setdefault(c.row_id, []):
            rows[c.row_id].append(c.surrogate_id)
    return rows


def chosen_cells(results: AuditResults) -> dict[tuple[str, str], CellRecord]:
    """(surrogate id, attack id) -> the cell at that attack's chosen epsilon."""
    chosen = chosen_epsilons(results)
    return {(c.surrogate_id, c.attack_id): c for c in results.cells
            if chosen.get(c.attack_id) is not None and math.isclose(c.epsilon_pm1, chosen[c.attack_id], abs_tol=1e-9)}


def _no_epsilon_message(results: AuditResults, attack_id: str) -> str:
    choice = next((c for c in results.epsilon_choice if c.attack_id == attack_id), None)
    if choice is None:
        return f"no epsilon choice recorded for attack {attack_id}; re-run the audit"
    smallest = min(choice.curve, default=None)
    tried = f"; smallest ε {smallest[0]:g} gave {smallest[1]:.3f}" if smallest else ""
    return f"no ε met the SSIM bound (mean SSIM ≥ {choice.bound:g}{tried}): extend `epsilons_pm1` downward"


def evaluate_gate(results: AuditResults) -> tuple[list[GateRule], str, dict | None]:
    """Judge every scenario row x attack (x surrogate, when a row has several) at the chosen epsilon.

    Returns the rules, the verdict (ERROR > FAIL > INCONCLUSIVE > PASS) and the worst case: the chosen-epsilon
    cell with the lowest adversarial AUC. With no thresholds configured there are no rules and the verdict is
    INCONCLUSIVE (`NO_CRITERIA` says why; the worst-case dict carries it as `note`).
    """
    criteria = _criteria(results)
    worst = worst_case(results)
    if not criteria:
        if worst is not None:
            worst["note"] = NO_CRITERIA
        return [], "INCONCLUSIVE", worst
    chosen, cells, rows = chosen_epsilons(results), chosen_cells(results), surrogates_by_row(results)
    rules: list[GateRule] = []
    if not rows or not chosen:
        rules.append(GateRule(id="audit/no-cells", rule="the audit measured at least one cell", row_id="-",
                              attack_id="-", epsilon_pm1=None, value=None, status="ERROR",
                              message="no cells in the results: no surrogate row or attack was measured"))
    for row_id, surrogate_ids in rows.items():
        for attack_id, eps in chosen.items():
            for sid in surrogate_ids:
                base = f"{row_id}/{sid}/{attack_id}" if len(surrogate_ids) > 1 else f"{row_id}/{attack_id}"
                cell = cells.get((sid, attack_id))
                for key, field, text, t in criteria:
                    rules.append(_rule(f"{base}/{key}", text, row_id, attack_id, eps, cell, field, t, results))
        rel = next((c for c in criteria if c[0] == "min-relative-auc"), None)
        if rel is not None and len(chosen) > 1:
            rules.append(_worst_rule(row_id, surrogate_ids, chosen, cells, rel))
    statuses = {r.status for r in rules}
    verdict = next(v for v in ("ERROR", "FAIL", "INCONCLUSIVE", "PASS") if v in statuses or v == "PASS")
    return rules, verdict, worst


def _rule(rule_id: str, text: str, row_id: str, attack_id: str, eps: float | None, cell: CellRecord | None,
          field: str, t: float, results: AuditResults) -> GateRule:
    if eps is None:
        return GateRule(id=rule_id, rule=text, row_id=row_id, attack_id=attack_id, epsilon_pm1=None, value=None,
                        status="ERROR", message=_no_epsilon_message(results, attack_id))
    if cell is None:
        return GateRule(id=rule_id, rule=text, row_id=row_id, attack_id=attack_id, epsilon_pm1=eps, value=None,
                        status="ERROR", message=f"no cell for this row and attack at the chosen epsilon {eps:g}; "
                                                "the run is incomplete, re-run the audit")
    iv: IntervalRecord = getattr(cell, field)
    if not _finite(iv):
        return GateRule(id=rule_id, rule=text, row_id=row_id, attack_id=attack_id, epsilon_pm1=eps, value=iv,
                        status="ERROR", message=f"the interval is undefined ({iv.degenerate} of {iv.resamples} "
                                                "resamples had one class only); use a larger test set")
    judge = _judge_at_least if field == "relative_auc" else _judge_at_most
    status, message = judge(iv, t)
    return GateRule(id=rule_id, rule=text, row_id=row_id, attack_id=attack_id, epsilon_pm1=eps, value=iv,
                    status=status, message=message)


def _worst_rule(row_id: str, surrogate_ids: list[str], chosen: dict[str, float | None],
                cells: dict[tuple[str, str], CellRecord], criterion: tuple[str, str, str, float]) -> GateRule:
    """The row's worst case over attacks (and surrogates): the minimum lower bound of relative AUC."""
    _, _, text, t = criterion
    rule_id, text = f"{row_id}/{_WORST_ATTACK}/min-relative-auc", f"worst case over attacks: {text}"
    missing = [a for a, e in chosen.items() for s in surrogate_ids if e is None or (s, a) not in cells]
    found = [cells[(s, a)] for a in chosen for s in surrogate_ids if (s, a) in cells]
    undefined = [c.attack_id for c in found if not _finite(c.relative_auc)]
    if missing or undefined or not found:
        which = ", ".join(sorted(set(missing + undefined))) or "all"
        return GateRule(id=rule_id, rule=text, row_id=row_id, attack_id=_WORST_ATTACK, epsilon_pm1=None, value=None,
                        status="ERROR", message=f"the worst case needs every attack; no defined result for: {which}")
    worst = min(found, key=lambda c: c.relative_auc.low)
    status, message = _judge_at_least(worst.relative_auc, t)
    if status != "FAIL" and any(c.relative_auc.high < t for c in found):
        status, message = "FAIL", f"some attack's whole interval lies below {threshold_text(t)}"
    return GateRule(id=rule_id, rule=text, row_id=row_id, attack_id=_WORST_ATTACK, epsilon_pm1=worst.epsilon_pm1,
                    value=worst.relative_auc, status=status, message=f"worst: {worst.attack_id}; {message}")


def worst_case(results: AuditResults) -> dict | None:
    """The chosen-epsilon cell with the lowest adversarial AUC point, and two plain sentences about it."""
    candidates = [c for c in chosen_cells(results).values() if math.isfinite(c.auc_adversarial.point)]
    if not candidates:
        return None
    c = min(candidates, key=lambda c: c.auc_adversarial.point)
    over = " on average over the classes" if len(c.per_class_auc_clean) > 1 else ""
    first = (f"The lowest adversarial AUC at the chosen budgets came from attack {c.attack_id} at ε = "
             f"{c.epsilon_pm1:g} ({c.epsilon_grey_levels:.3g} grey levels of 255), crafted on surrogate row "
             f"{c.row_id}: the target's AUC fell from {fmt_interval(c.auc_clean)} to {fmt_interval(c.auc_adversarial)}, "
             f"{100 * c.relative_auc.point:.0f}% of its clean value.")
    second = (f"In plain terms: with every pixel changed by at most {c.epsilon_grey_levels:.3g} grey levels, using a "
              "model the attacker trained without ever querying the target, the target ranked a positive case above "
              f"a negative one in {100 * c.auc_adversarial.point:.0f}% of pairs{over} instead of "
              f"{100 * c.auc_clean.point:.0f}% (50% is chance).")
    return {"row_id": c.row_id, "surrogate_id": c.surrogate_id, "attack_id": c.attack_id, "epsilon_pm1": c.epsilon_pm1,
            "epsilon_grey_levels": c.epsilon_grey_levels, "auc_clean": c.auc_clean.model_dump(),
            "auc_adversarial": c.auc_adversarial.model_dump(), "relative": c.relative_auc.model_dump(),
            "statement": f"{first} {second}"}


def gate_outcome(results: AuditResults) -> tuple[list[GateRule], str, dict | None]:
    """The gate as the run recorded it; evaluated now when the run has not recorded a verdict yet."""
    if results.verdict == "PENDING":
        return evaluate_gate(results)
    return results.gate, results.verdict, results.worst_case


def exit_code(verdict: str) -> int:
    """PASS 0; FAIL or INCONCLUSIVE 1 (an inconclusive bound does not meet the criterion); ERROR 2."""
    if verdict not in _EXIT:
        raise ValueError(f"unknown verdict {verdict!r}")
    return _EXIT[verdict]


def junit_xml(results: AuditResults) -> bytes:
    """One testcase per gate rule (name = rule id, classname = row id): FAIL/INCONCLUSIVE fail, ERROR errors."""
    rules, verdict, _ = gate_outcome(results)
    suites = ET.Element("testsuites", name="medaudit")
    suite = ET.SubElement(suites, "testsuite", name=f"medaudit gate: {results.scenario.get('name', '?')}",
                          tests=str(len(rules) or 1), skipped="0", timestamp=results.finished_at or results.started_at,
                          failures=str(sum(r.status in ("FAIL", "INCONCLUSIVE") for r in rules) + (not rules)),
                          errors=str(sum(r.status == "ERROR" for r in rules)))
    props = ET.SubElement(suite, "properties")
    for name, value in (("target_sha256", results.target.get("sha256", "")), ("target_path", results.target.get("path", "")),
                        ("scenario_name", results.scenario.get("name", "")), ("scenario_sha256", results.scenario_sha256),
                        ("verdict", verdict), ("results_schema_version", results.schema_version)):
        ET.SubElement(props, "property", name=name, value=str(value))
    if not rules:
        case = ET.SubElement(suite, "testcase", name="gate/acceptance-criteria", classname="gate", time="0")
        ET.SubElement(case, "failure", type="INCONCLUSIVE", message=NO_CRITERIA).text = NO_CRITERIA
    for r in rules:
        case = ET.SubElement(suite, "testcase", name=r.id, classname=r.row_id, time="0")
        detail = f"{r.rule}\nresult: {fmt_interval(r.value)}\n{r.status}: {r.message}"
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
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|").replace("\n", " ")


def markdown_summary(results: AuditResults) -> str:
    """A short, link-free summary for a pull-request comment."""
    rules, verdict, worst = gate_outcome(results)
    target = Path(results.target.get("path", "?")).name
    sha = results.target.get("sha256", "")[:16] or "unknown"
    lines = [f"### medaudit verdict: {verdict} {MARKS.get(verdict, '')}".rstrip(), "",
             f"Scenario **{_md(results.scenario.get('name', '?'))}** · target `{_md(target)}` · sha256 `{sha}`", ""]
    if not rules:
        lines += [f"{MARKS['INCONCLUSIVE']} {NO_CRITERIA}", ""]
    else:
        counts = {s: sum(r.status == s for r in rules) for s in ("PASS", "FAIL", "INCONCLUSIVE", "ERROR")}
        lines += [", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n), "",
                  "| | row | attack | ε | criterion | result (95% interval) |", "|---|---|---|---|---|---|"]
        for r in rules:
            eps = "—" if r.epsilon_pm1 is None else f"{r.epsilon_pm1:g}"
            result = fmt_interval(r.value) if r.status != "ERROR" else f"ERROR: {r.message}"
            lines.append(f"| {MARKS[r.status]} | {_md(r.row_id)} | {_md(r.attack_id)} | {eps} | {_md(r.rule)} | "
                         f"{_md(result)} |")
        lines.append("")
    if worst is not None:
        lines += [f"**Worst case:** {_md(worst['statement'])}", ""]
    return "\n".join(lines)


def write_markdown(results: AuditResults, path: str | Path) -> None:
    atomic_write(Path(path), markdown_summary(results).encode("utf-8"))
