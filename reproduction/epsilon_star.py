"""Breaking ε on the schema 3.x runs: per surrogate row (and per bound tier), the smallest ε at which the judged
attacker breaks each acceptance criterion, with its bootstrap interval, beside the ε where the SSIM bound binds for
that attack (the paper's Fig. 3, AUC against ε per attacker, read as one number per criterion); then each tier's
verdict. Only 3.x runs carry breaking ε (`GateRule.breaking`); a 2.0 run measured the paper's fixed grid.
"""

from __future__ import annotations

from reproduction.fmt import eps, table
from reproduction.protocol import arch_name, target_label
from reproduction.record import GateRuleView
from reproduction.runs import ModalityRuns, Run

WORST = "worst-over-attacks"  # the rule id part of a row's worst case over its attacks
TITLE = "## Breaking ε under the fixed `different` rule (schema 3.x runs)"


def breaking_text(rule: GateRuleView) -> str:
    """`0.021 (0.018–0.025)`, with `, holds at 0.014` where the run recorded its bracket (3.3), `> 0.12` when no
    measured ε breaks it, `—` when not recorded."""
    b = rule.breaking
    if b is None:
        return "—"
    if b.epsilon_pm1 is None:
        return f"> {b.largest_tried_pm1:.3g}"
    high = f"> {b.largest_tried_pm1:.3g}" if b.high_pm1 is None else f"{b.high_pm1:.3g}"
    holds = "" if b.holds_at_pm1 is None else f", holds at {b.holds_at_pm1:.3g}"
    return f"{b.epsilon_pm1:.3g} ({eps(b.low_pm1)}–{high}{holds})"


def margin(rule: GateRuleView) -> str:
    b = rule.breaking
    if b is None or b.epsilon_pm1 is None or not b.bound_epsilon_pm1:
        return "—"
    return f"{b.epsilon_pm1 / b.bound_epsilon_pm1:.2f}"


def row_name(run: Run, row_id: str) -> str:
    """`different-random-d1 (MNv2)` for a transfer row, the tier's name for a bound tier."""
    if "-" not in row_id:
        return f"{row_id} tier"
    row = run.row(row_id)
    arch = run.row_arch(row)
    return f"{row} ({arch_name(arch)})" if arch else row


def rows_of(run: Run, worst_only: bool) -> list[list[str]]:
    """Main text (`worst_only`): one line per row, each criterion's ε* (a transfer row's worst case over its attacks)
    and the attack and bound's ε of the first criterion; appendix: one line per row, attack and criterion."""
    if not worst_only:
        return [
            [row_name(run, r.row_id), r.criterion_id, r.attack_id.split("-")[0], breaking_text(r), margin(r), r.status]
            for r in run.record.gate
            if r.attack_id != WORST
        ]
    rows: dict[str, list] = {}
    for rule in run.record.gate:
        if rule.tier == "transfer" and rule.attack_id != WORST:
            continue  # a transfer row's worst case over its attacks stands for it here
        rows.setdefault(row_name(run, rule.row_id), []).append(rule)
    criteria = list(dict.fromkeys(r.criterion_id for rules in rows.values() for r in rules))
    out = []
    for name, rules in rows.items():
        by = {r.criterion_id: r for r in rules}
        first = min(
            (r for r in rules if r.breaking and r.breaking.epsilon_pm1),
            key=lambda r: r.breaking.epsilon_pm1,
            default=rules[0],
        )
        b = first.breaking
        cells = [f"{breaking_text(by[c])} {by[c].status}" if c in by else "—" for c in criteria]
        out.append(
            [
                name,
                *cells,
                b.attack_id.split("-")[0] if b else "—",
                eps(b.bound_epsilon_pm1 if b else None),
                margin(first),
            ]
        )
    return [criteria] + out


def audit_label(c: ModalityRuns, run: Run) -> str:
    """`retina, pretraining vs Lite0 R (d1)`: the audit a heading or a table row names."""
    return f"{c.folder.name}, {run.experiment} vs {target_label(run.arch, run.init, run.split)}"


def run_lines(c: ModalityRuns, run: Run, worst_only: bool) -> list[str]:
    label = audit_label(c, run)
    if worst_only:
        criteria, *rows = rows_of(run, True)
        head = ["row", *(f"{k} ε*" for k in criteria), "first by", "bound's ε", "ε* / bound"]
    else:
        head, rows = ["row", "criterion", "attack", "ε* (95% interval)", "ε* / bound", "status"], rows_of(run, False)
    made = f"Verdict {run.record.verdict}."  # its code and machine: the main text's provenance table
    return [f"### {label}", "", *([made, ""] if worst_only else []), *table(head, rows), ""]


def statement_lines(runs: list[tuple[ModalityRuns, Run]]) -> list[str]:
    """Each tier's verdict statement once, with the audits that wrote it (most audits of a tier write the same)."""
    said: dict[tuple[str, str], list[str]] = {}
    for c, run in runs:
        for t in run.record.tier_verdicts:
            audit = f"{c.folder.name} {run.experiment} vs {target_label(run.arch, run.init, run.split)}"
            said.setdefault((t.tier, t.statement), []).append(audit)
    return [f"- {tier} ({', '.join(audits)}): {statement}" for (tier, statement), audits in said.items()] + [""]


def new_runs(loaded: dict[str, ModalityRuns]) -> list[tuple[ModalityRuns, Run]]:
    return [(c, r) for c in loaded.values() for r in c.runs if r.schema != "2.0"]


def earliest_rows(runs: list[tuple[ModalityRuns, Run]]) -> list[tuple[str, str, str, float | None]]:
    """Per audit and tier: (audit, tier, verdict, the earliest ε* over its rows, attacks and criteria or None)."""
    out = []
    for c, run in runs:
        label = audit_label(c, run)
        for t in run.record.tier_verdicts:
            earliest = min(
                (
                    r.breaking.epsilon_pm1
                    for r in run.record.gate
                    if r.tier == t.tier and r.breaking and r.breaking.epsilon_pm1
                ),
                default=None,
            )
            out.append((label, f"{t.tier}{' (gated)' if t.gated else ''}", t.status, earliest))
    return out


def span_text(values: list[float]) -> str:
    """`0.0863–0.173`; one value when all are equal; `—` when there is none."""
    if not values:
        return "—"
    low, high = min(values), max(values)
    return eps(low) if low == high else f"{eps(low)}–{eps(high)}"


def section(loaded: dict[str, ModalityRuns]) -> list[str]:
    """Main text: per tier, the verdicts of the 3.x runs and the range of their earliest ε*; per audit in the
    appendix."""
    runs = new_runs(loaded)
    lines = [TITLE, ""]
    if not runs:
        return lines + [
            "No schema 3.x run is committed yet, so no breaking ε is shown: the committed runs measured the "
            "paper's fixed grid, where no ε is searched.",
            "",
        ]
    tiers: dict[str, list[tuple[str, float | None]]] = {}
    for _, tier, status, earliest in earliest_rows(runs):
        tiers.setdefault(tier, []).append((status, earliest))
    rows = []
    for tier, got in tiers.items():
        verdicts = dict.fromkeys(s for s, _ in got)
        counts = ", ".join(f"{sum(s == v for s, _ in got)} {v}" for v in verdicts)
        found = [e for _, e in got if e is not None]
        none = sum(e is None for _, e in got)
        rows.append([tier, counts, span_text(found) + (f"; — in {none}" if none and found else "")])
    return lines + [
        f"Per tier over the {len(runs)} audits: their verdicts and the range of each audit's earliest ε* over its "
        "rows, attacks and criteria (`—`: none breaks within the ε measured); per audit and row in the appendix.",
        "",
        *table(["tier", "verdicts", "earliest ε*"], rows),
        "",
    ]


def appendix(loaded: dict[str, ModalityRuns]) -> list[str]:
    """Appendix: per 3.x run, each row's earliest ε* per criterion, then every row, attack and criterion."""
    runs = new_runs(loaded)
    if not runs:
        return []
    lines = [
        "## Breaking ε per audit (schema 3.x runs)",
        "",
        "Per audit and tier: its verdict and the earliest ε* over its rows, attacks and criteria (`—`: none breaks "
        "within the ε measured).",
        "",
        *table(
            ["audit", "tier", "verdict", "earliest ε*"],
            [[a, t, s, eps(e)] for a, t, s, e in earliest_rows(runs)],
        ),
        "",
        "What each tier's verdict says, once per distinct statement, with the audits that made it:",
        "",
        *statement_lines(runs),
        "## Breaking ε per row (schema 3.x runs)",
        "",
        "Per row and criterion: ε* (95% interval), the smallest ε at which the row's attacker most harmful to the "
        "target breaks it, the earliest over its attacks, and the rule's status; then the attack that breaks first, "
        "the ε where its mean SSIM meets the bound, and their ratio (below 1: broken inside the perceptibility "
        "budget). `>` marks an ε* beyond the largest ε tried.",
        "",
    ]
    for c, run in runs:
        lines += run_lines(c, run, worst_only=True)
    lines += ["## Breaking ε per attack (schema 3.x runs)", ""]
    for c, run in runs:
        lines += run_lines(c, run, worst_only=False)
    return lines
