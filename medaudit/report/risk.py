"""Risk management views (ISO 14971 §7–8, AAMI TIR34971, MDCG 2019-16): each criterion's hazardous situation, harm and
control once, then per threat the residual risk the audit measured, and the audit's known limitations."""

from __future__ import annotations

import math

from medaudit.records import CONTROLS, CRITERIA, SEVERITY, TIER_LABELS, AuditResults
from medaudit.report.findings import attack_of, summary_rules, threat_order, unfit_why
from medaudit.report.threats import knowledge

BOUND_WHO = {"query": "an attacker with the target's scores", "whitebox": "an attacker with the target's weights"}


def hazard_rows(results: AuditResults) -> list[dict]:
    """The stated criteria with their hazardous situation, harm and suggested control (AAMI TIR34971)."""
    stated = {r.criterion_id for r in results.gate}
    return [
        {"c": c, "control": CONTROLS[c.control_id]}
        for c in CRITERIA
        if c.id in stated or getattr(results.scenario.gate, c.threshold_field) is not None
    ]


ACCEPTABILITY = {  # the gated tiers' outcome for a hazard -> its residual risk against the acceptance criteria
    "PASS": "acceptable",
    "FAIL": "not acceptable",
    "INCONCLUSIVE": "not shown acceptable",
    "ERROR": "not shown acceptable",
    "NOT RUN": "not shown acceptable",
}


def hazard_conclusions(results: AuditResults) -> list[dict]:
    """Per stated criterion (one hazard each): acceptable, not acceptable or not shown acceptable, as the gated tiers'
    page-1 rows recorded it against the scenario's criteria, with the reason and what the reported tiers add, each
    citing its page-1 row for the ε* rather than repeating it."""
    out = []
    for c in CRITERIA:
        rows = [r for r in results.verdict_rows if r.criterion_id == c.id]
        gated = [r for r in rows if r.gated]
        if not rows:
            continue
        worst = max(gated, key=lambda r: SEVERITY.get(r.status, 1)) if gated else None
        status = worst.status if worst else "NOT RUN"
        row = {id(r): n for n, r in enumerate(results.verdict_rows, 1)}  # page 1's row numbers: the ε* are there
        reason = f"{worst.reason} (page 1, row {row[id(worst)]})" if worst else "no gated tier judged it"
        others = [f"{TIER_LABELS[r.tier]} tier: {r.status.lower()} (row {row[id(r)]})" for r in rows if not r.gated]
        out.append(
            {
                "c": c,
                "control": CONTROLS[c.control_id],
                "status": status,
                "conclusion": ACCEPTABILITY[status],
                "reason": reason,
                "reported": "; ".join(others),
            }
        )
    return out


def _who(row_id: str, results: AuditResults) -> str:
    if row_id in BOUND_WHO:
        return BOUND_WHO[row_id]
    seed = next((s for s in results.surrogates if s.row_id == row_id and s.role == "attacker"), None)
    return f"a {knowledge(seed, results)['level'].split(':')[0]} transfer attacker" if seed else "a transfer attacker"


def residual_rows(results: AuditResults) -> list[dict]:
    """Per threat: each criterion's outcome, the suggested controls of those broken, and one residual-risk sentence."""
    summaries = summary_rules(results)
    surrogates = {s.id: s for s in results.surrogates}
    out = []
    for row_id in threat_order(results):
        rules = [summaries[(row_id, c.id)] for c in CRITERIA if (row_id, c.id) in summaries]
        if not rules:
            continue
        tid, who = rules[0].threat_id, _who(row_id, results)
        failed = [r for r in rules if r.status == "FAIL"]
        open_ = [r for r in rules if r.status in ("INCONCLUSIVE", "ERROR")]
        if failed:
            first = min(
                (r.breaking for r in failed if r.breaking and r.breaking.epsilon_pm1 is not None),
                key=lambda b: b.epsilon_pm1,
                default=None,
            )
            at = (
                f" from ε* {first.epsilon_pm1:.3g}" + (f", {first.margin:.2g}× the budget's ε" if first.margin else "")
                if first
                else ""
            )
            shorts = ", ".join(r.criterion_id for r in failed)
            text = f"Present: {who} breaks {shorts} of {tid}{at}."
        elif open_:
            why = []
            for r in open_:
                s = surrogates.get(r.attacker_id or "")
                f = s.fitness_for(attack_of(r, results) or "") if s else None
                why.append(f"{r.criterion_id} ({unfit_why(f) if f and not f.fit else 'interval straddles'})")
            text = f"Not shown acceptable for {tid}: {', '.join(why)} unresolved against {who}."
        else:
            largest = max((r.breaking.largest_tried_pm1 for r in rules if r.breaking), default=None)
            upto = f" up to ε {largest:g}" if largest else ""
            text = f"Within the stated criteria for {tid}{upto}: {who} breaks none at an admissible ε."
        out.append(
            {
                "threat_id": tid,
                "rules": rules,
                "controls": sorted({r.control_id for r in failed}),
                "text": text,
            }
        )
    return out


def limitations(results: AuditResults) -> list[str]:
    """Known limitations of this run, each stated once with its numbers."""
    data, sc = results.data, results.scenario
    out = [
        "A transfer result is a realistic estimate of one attacker, not the most any attacker can do: a stronger one "
        "(more or better data, queries, the weights, or an attack adapted to a defence) can do more. The query and "
        "white-box tiers show that stronger attacker where they ran; the white-box tier is a verified bound only when "
        "its checks pass and it shows no sign of gradient masking.",
    ]
    masked = next((v.masking for v in results.tier_verdicts if v.masking), None)
    if masked:
        flagged = next((a.id for a in results.anomalies if masked in a.text), None)
        where = f"anomaly {flagged} on page 1" if flagged else masked
        out.append(f"The white-box tier shows possible gradient masking ({where}), so it is not a verified bound here.")
    widths = [
        c.relative_auc.high - c.relative_auc.low
        for c in results.cells
        if math.isfinite(c.relative_auc.high) and math.isfinite(c.relative_auc.low)
    ]
    lo, hi = (f"{100 * min(widths):.0f}", f"{100 * max(widths):.0f}") if widths else ("", "")
    span = f"; relative-AUC intervals are {lo if lo == hi else f'{lo}–{hi}'} points wide" if widths else ""
    positives = "" if data.test_positives is None else f" ({data.test_positives} positive)"
    out.append(
        f"Sample size: {data.test_size} test images{positives}{span}. More test images narrow the intervals and may "
        "settle inconclusive criteria."
    )
    names = {"query": "query", "whitebox": "white-box"}
    subsets = [f"{names[t.tier]} on {t.images}" for t in results.tiers if t.available and t.images < data.test_size]
    if subsets:
        out.append(
            f"The query and white-box tiers attacked a stratified subset of the test images ({', '.join(subsets)})."
        )
    seeds: dict[str, int] = {}
    for s in results.surrogates:
        if s.role == "attacker" and not s.member_ids:
            seeds[s.row_id] = seeds.get(s.row_id, 0) + 1
    if seeds and min(seeds.values()) < 3:
        out.append(
            f"As few as {min(seeds.values())} surrogate seed(s) in a row: one seed can move transfer results by 1–2 "
            "points, and an attacker with more seeds has more chances (3 or more recommended)."
        )
    budget = [s.id for s in results.surrogates if s.stop_reason == "budget" and not s.member_ids]
    if budget:
        out.append(
            f"{len(budget)} surrogate(s) stopped at the epoch budget, not at a validation plateau, and may be "
            f"under-trained: {', '.join(budget)}."
        )
    out.append(
        f"The target's development split ({sc.target.trained_on}) is as the scenario states it; medaudit cannot "
        "verify which images the manufacturer trained on."
    )
    out += [f"Data: {note.rstrip('.')}." for note in data.notes]
    out.append(
        "Scope: untargeted L∞-bounded digital edits at inference time by the attacks listed. Not covered: other "
        "norms, patches or physical-world attacks, data poisoning, model inversion, membership or data leakage, "
        "distribution drift."
    )
    if sc.delivery == "float":
        out.append(
            "Adversarial images reached the target as floating-point arrays; an attacker who must deliver 8-bit files "
            "loses sub-grey-level detail (scenario `delivery: uint8` measures that case)."
        )
    if sc.perceptibility is not None:
        out.append(
            "Perceptibility is judged by mean SSIM, a proxy, not a reader study: single images may change more "
            "visibly than the mean suggests."
        )
    grid = [c.attack_id for c in results.epsilon_choice if c.admissible_epsilons_pm1 and not c.bound_binds]
    if grid:
        out.append(
            f"For {', '.join(grid)} every ε measured stayed within the budget: the grid, not perceptibility, limited ε."
        )
    none = [c.attack_id for c in results.epsilon_choice if not c.admissible_epsilons_pm1]
    if none:
        out.append(f"No admissible ε for {', '.join(none)}: these attacks have no result within the budget.")
    return out
