"""`medaudit compare`: this release against the previous one, on the same scenario and the same test images.

Per tier and criterion, each release's judged worst case (the rule the gate judged worst) is taken from its
`results.json` and per-image scores, and the difference (this release minus the previous) of the criterion's value
is bootstrapped over the shared test images (patients), on the same resamples for both. A worsening beyond the
scenario's `gate.max_regression` whose whole interval lies past it is a regression (FAIL); an interval that
straddles it is INCONCLUSIVE. Both runs' files are checked against the hashes their records state.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from medaudit.core import AuditInputError, bootstrap_curves, percentile_interval, safe_name, sha256_file
from medaudit.records import (
    CRITERIA,
    SEVERITY,
    WORST_OVER_ATTACKS,
    AuditResults,
    CriterionChange,
    GateRule,
    IntervalRecord,
    Outcome,
    ReleaseComparison,
    read_results,
)

SAME = (  # what two releases must share to be compared, and how to say it when they do not
    ("scenario", lambda r: r.provenance.scenario_canonical_sha256),
    ("data file", lambda r: r.data.sha256),
    ("test images and splits", lambda r: r.data.split_ids_sha256),
    ("test selection", lambda r: r.data.test_selection),
)
COMPARE_EXIT = {"PASS": 0, "INCONCLUSIVE": 3, "FAIL": 3}  # a regression not ruled out blocks the release


def read_release(path: Path) -> AuditResults:
    results = read_results(path)
    if results.status != "complete":
        raise AuditInputError(f"{path}: the run did not finish; continue it with `medaudit run ... --resume`")
    return results


def check_comparable(base: AuditResults, base_path: Path, new: AuditResults, new_path: Path) -> None:
    """Refuse, in one line naming the file and the mismatch, two releases audited on different terms."""
    for what, key in SAME:
        if key(base) != key(new):
            raise AuditInputError(
                f"{new_path}: its {what} differs from the previous release's ({base_path}); compare runs of the "
                "same scenario on the same data"
            )


def _scores(results: AuditResults, folder: Path, name: str) -> dict[str, np.ndarray]:
    """One per-image file of a run, checked against the hash its record states."""
    recorded = next((f for f in results.per_image if f.path == f"per_image/{name}"), None)
    path = folder / "per_image" / name
    if recorded is None or not path.is_file():
        raise AuditInputError(f"{path}: per-image scores missing; keep a run's per_image/ folder beside results.json")
    if sha256_file(path) != recorded.sha256:
        raise AuditInputError(f"{path}: its sha256 differs from the one {folder / 'results.json'} records")
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def worst_rule(rules: tuple[GateRule, ...], tier: str, criterion_id: str) -> GateRule | None:
    """The rule the gate judged worst for one tier and criterion (its value's harm breaks ties)."""
    criterion = next(c for c in CRITERIA if c.id == criterion_id)
    mine = [
        r
        for r in rules
        if r.tier == tier and r.criterion_id == criterion_id and r.attack_id != WORST_OVER_ATTACKS and r.value
    ]

    def rank(r: GateRule) -> tuple[int, float]:
        v = r.value
        if not v.finite:
            return SEVERITY[r.status], -math.inf
        return SEVERITY[r.status], -v.low if criterion.at_least else v.high

    return max(mine, key=rank, default=None)


def _curve(results: AuditResults, folder: Path, rule: GateRule):
    cell = next(
        c
        for c in results.cells
        if c.attacker_id == rule.attacker_id and c.attack_id == rule.attack_id and c.epsilon_pm1 == rule.epsilon_pm1
    )
    clean, arrays = _scores(results, folder, "clean.npz"), _scores(results, folder, f"{safe_name(cell.id)}.npz")
    return clean, arrays


def compare(base_path: Path, new_path: Path, max_regression: float | None = None) -> ReleaseComparison:
    """The previous release (`base_path`) against this one (`new_path`); raise AuditInputError on bad input."""
    base, new = read_release(base_path), read_release(new_path)
    check_comparable(base, base_path, new, new_path)
    limit = new.scenario.gate.max_regression if max_regression is None else max_regression
    b = new.scenario.bootstrap
    changes = []
    for row in new.verdict_rows:
        criterion = next(c for c in CRITERIA if c.id == row.criterion_id)
        rules = (worst_rule(base.gate, row.tier, row.criterion_id), worst_rule(new.gate, row.tier, row.criterion_id))
        if None in rules:
            continue
        (base_clean, base_cell), (new_clean, new_cell) = (
            _curve(base, base_path.parent, rules[0]),
            _curve(new, new_path.parent, rules[1]),
        )
        if not np.array_equal(base_cell["image_indices"], new_cell["image_indices"]):
            raise AuditInputError(f"{new_path}: its {row.tier} tier attacked other test images than the previous one's")
        if not np.array_equal(base_clean["labels"], new_clean["labels"]):
            raise AuditInputError(f"{new_path}: its test labels differ from the previous release's ({base_path})")
        index = new_cell["image_indices"]
        groups = new_clean["groups"][index] if new.data.patient_level else None
        labels = new_clean["labels"][index]
        curves = [
            bootstrap_curves(
                labels,
                clean["scores"][index],
                [cell["adversarial_scores"]],
                [cell["control_scores"]],
                resamples=b.resamples,
                seed=new.scenario.seed,
                groups=groups,
            )
            for clean, cell in ((base_clean, base_cell), (new_clean, new_cell))
        ]
        field = criterion.cell_field
        points = [float(getattr(c, field)[0]) for c in curves]
        diff = percentile_interval(
            points[1] - points[0],
            getattr(curves[1], f"resampled_{field}")[:, 0] - getattr(curves[0], f"resampled_{field}")[:, 0],
            b.confidence,
        )
        status, message = _judge_change(IntervalRecord.of(diff), criterion.at_least, limit)
        changes.append(
            CriterionChange(
                tier=row.tier,
                criterion_id=row.criterion_id,
                base_rule_id=rules[0].id,
                new_rule_id=rules[1].id,
                base_value=rules[0].value,
                new_value=rules[1].value,
                difference=IntervalRecord.of(diff),
                base_breaking=rules[0].breaking,
                new_breaking=rules[1].breaking,
                status=status,
                message=message,
            )
        )
    worst = max((c.status for c in changes), key=lambda s: SEVERITY[s], default="PASS")
    return ReleaseComparison(
        base_results_path=str(base_path),
        base_results_sha256=sha256_file(base_path),
        base_target_name=base.target.name,
        base_target_sha256=base.target.sha256,
        base_verdict=base.verdict,
        max_regression=limit,
        changes=tuple(changes),
        verdict=worst,
    )


def _judge_change(diff: IntervalRecord, at_least: bool, limit: float) -> tuple[Outcome, str]:
    """A change (this release minus the previous) against the largest allowed worsening `limit`: for an at-least
    criterion worse is lower, for an at-most one higher."""
    worse_low, worse_high = (-diff.high, -diff.low) if at_least else (diff.low, diff.high)  # worsening, >= 0 is worse
    text = f"change {diff.point:+.3f} ({diff.low:+.3f}, {diff.high:+.3f})"
    if not diff.finite:
        return "INCONCLUSIVE", f"{text}: the interval is undefined"
    if worse_high <= limit:
        return "PASS", f"{text}: no worsening beyond {limit:g}"
    if worse_low > limit:
        return "FAIL", f"{text}: worse by more than {limit:g} over the whole interval"
    return "INCONCLUSIVE", f"{text}: the interval straddles a worsening of {limit:g}"


def comparison_markdown(comparison: ReleaseComparison, new: AuditResults) -> str:
    """The comparison as a pull-request comment: the verdict, then one row per tier and criterion."""
    from medaudit.gate.markdown import md
    from medaudit.records import MARKS, breaking_text

    lines = [
        f"### medaudit release comparison: {comparison.verdict} {MARKS[comparison.verdict]}",
        "",
        f"Previous release `{md(comparison.base_target_name)}` (verdict {comparison.base_verdict}) against "
        f"`{md(new.target.name)}` (verdict {new.verdict}); largest allowed worsening {comparison.max_regression:g}.",
        "",
        "| | tier | criterion | previous | this release | change (95% interval) | ε* previous → this |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in comparison.changes:
        lines.append(
            f"| {MARKS[c.status]} | {c.tier} | {c.criterion_id} | {c.base_value.point:.3f} | {c.new_value.point:.3f} | "
            f"{md(c.message)} | {md(breaking_text(c.base_breaking))} → {md(breaking_text(c.new_breaking))} |"
        )
    return "\n".join(lines) + "\n"


def comparison_junit(comparison: ReleaseComparison) -> bytes:
    """One testcase per tier and criterion: a regression is a failure, an undecided one too (typed INCONCLUSIVE)."""
    import xml.etree.ElementTree as ET

    suites = ET.Element("testsuites", name="medaudit-compare")
    failed = sum(c.status != "PASS" for c in comparison.changes)
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="medaudit release comparison",
        tests=str(len(comparison.changes)),
        failures=str(failed),
    )
    for c in comparison.changes:
        case = ET.SubElement(suite, "testcase", name=f"{c.tier}/{c.criterion_id}", classname=c.tier, time="0")
        if c.status != "PASS":
            ET.SubElement(case, "failure", type=c.status, message=c.message).text = c.message
        else:
            ET.SubElement(case, "system-out").text = c.message
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)
