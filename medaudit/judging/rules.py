"""The verdict: every stated criterion judged per threat and attack at every admissible epsilon, then per tier.

A threat is a scenario row (the transfer tier: what the attacker knows) or a bound tier (query, white-box: the
target itself is the attacker's victim). Per threat and attack the attacker keeps whichever attacker and
admissible epsilon hurt the target most, so each rule reports the worst of them. Only fit transfer attackers are
evidence of robustness; a failure measured with an unfit one is still a failure (the attack worked). When the
white-box bound meets a criterion at every admissible epsilon with no sign of gradient masking, no weaker
attacker can break it, so it holds for every tier. Pure: records in, records out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from medaudit.core import GREY_LEVELS_PER_PM1
from medaudit.records import (
    SEVERITY,
    WORST_OVER_ATTACKS,
    BreakingEpsilon,
    CellRecord,
    Criterion,
    EpsilonChoice,
    GateRule,
    IntervalRecord,
    Outcome,
    SurrogateResult,
    TierStatus,
    Verdict,
    judge_interval,
    rule_text,
    stated,
)
from medaudit.scenario import Scenario

NO_CRITERIA_ID = "C-NONE"  # the criterion id of the one rule recorded when the scenario states no criterion
NO_CRITERIA = (
    "No acceptance criteria were stated: the scenario's `gate` sets none of min_relative_auc, "
    "max_adversarial_specific_drop, min_control_relative_auc, so nothing was judged and the verdict is "
    "INCONCLUSIVE. State the criteria in the scenario before the run."
)
_EPS_DIGITS = 9


def threat_id(row_id: str) -> str:
    """The risk file's id for the threat one scenario row (or bound tier) describes."""
    return f"T-{row_id}"


def eps_text(e: float) -> str:
    return f"ε {e:g} ({e * GREY_LEVELS_PER_PM1:.3g} grey levels)"


@dataclass(frozen=True)
class _Measured:
    """One (attacker, epsilon) judged for one criterion."""

    attacker_id: str
    fit: bool
    unfit_reason: str
    epsilon_pm1: float
    value: IntervalRecord | None
    status: Outcome
    message: str

    def rank(self, criterion: Criterion) -> tuple[int, float]:
        """Larger is worse for the target: the outcome first, then the judged bound (ties: the most harmful)."""
        if self.value is None or not self.value.finite:
            return SEVERITY[self.status], -math.inf
        return SEVERITY[self.status], -self.value.low if criterion.at_least else self.value.high


@dataclass(frozen=True)
class Evidence:
    """The shared inputs of one judgement."""

    scenario: Scenario
    cells: dict[tuple[str, str, float], CellRecord]  # (attacker, attack, epsilon) -> cell
    choices: dict[str, EpsilonChoice]
    fit: dict[tuple[str, str], tuple[bool, str]]  # (attacker, attack) -> (fit, why not)
    breaking: dict[tuple[str, str, str], BreakingEpsilon]  # (attacker, attack, criterion id) -> epsilon*

    @classmethod
    def of(cls, scenario, cells, surrogates, choices, breaking) -> "Evidence":
        fit = {(s.id, f.attack_id): (f.fit, "; ".join(f.reasons) or "unfit") for s in surrogates for f in s.fitness}
        return cls(
            scenario,
            {(c.attacker_id, c.attack_id, round(c.epsilon_pm1, _EPS_DIGITS)): c for c in cells},
            {c.attack_id: c for c in choices},
            fit,
            {(b.attacker_id, b.attack_id, b.criterion_id): b for b in breaking},
        )

    def is_fit(self, attacker_id: str, attack_id: str, tier: str) -> tuple[bool, str]:
        if tier != "transfer":
            return True, ""  # a bound tier attacks the target itself: no proxy whose fitness is in question
        if (attacker_id, attack_id) not in self.fit:
            raise ValueError(f"attacker {attacker_id} has no fitness for {attack_id}: finalize assesses it first")
        return self.fit[(attacker_id, attack_id)]


def judge_rule(
    ev: Evidence, tier: str, row_id: str, attackers: list[str], attack_id: str, criterion: Criterion, threshold: float
) -> GateRule:
    """One threat, one attack, one criterion, judged at every admissible epsilon on every attacker of the threat."""
    base = dict(
        id=f"{row_id}/{attack_id}/{criterion.key}",
        tier=tier,
        criterion_id=criterion.id,
        threat_id=threat_id(row_id),
        control_id=criterion.control_id,
        rule=rule_text(criterion, threshold, ev.scenario.bootstrap.confidence),
        row_id=row_id,
        attack_id=attack_id,
    )
    choice = ev.choices.get(attack_id)
    if choice is None or not choice.admissible_epsilons_pm1 or not attackers:
        message = (
            "no cell was recorded for it; re-run the audit"
            if choice is None or not attackers
            else f"no ε met the SSIM bound (mean SSIM ≥ {choice.bound:g}; smallest ε {choice.curve[0][0]:g} gave "
            f"{choice.curve[0][1]:.3f}): extend `epsilons_pm1` downward"
        )
        return GateRule(
            **base, attacker_id=None, epsilon_pm1=None, value=None, status="ERROR", message=message, breaking=None
        )
    measured = []
    for a in attackers:
        fit, why = ev.is_fit(a, attack_id, tier)
        for e in choice.admissible_epsilons_pm1:
            cell = ev.cells.get((a, attack_id, round(e, _EPS_DIGITS)))
            if cell is None:
                measured.append(_Measured(a, fit, why, e, None, "ERROR", f"no cell for {a} at ε {e:g}; re-run"))
                continue
            value = getattr(cell, criterion.cell_field)
            measured.append(_Measured(a, fit, why, e, value, *judge_interval(value, criterion, threshold)))
    # a fit attacker's result is evidence either way; an unfit one's only when the attack succeeded anyway
    evidence = [m for m in measured if m.fit or m.status in ("FAIL", "ERROR")]
    where = f"judged at every admissible ε ({', '.join(f'{e:g}' for e in choice.admissible_epsilons_pm1)})"
    pool = evidence or measured
    worst = max(pool, key=lambda m: m.rank(criterion))
    candidates = [ev.breaking.get((m, attack_id, criterion.id)) for m in {m.attacker_id for m in pool}]
    broken = [b for b in candidates if b is not None]
    earliest = min(broken, key=lambda b: math.inf if b.epsilon_pm1 is None else b.epsilon_pm1, default=None)
    if not evidence:
        message = (
            f"no fit attacker in this row, so its results are not evidence of robustness "
            f"({'; '.join(sorted({f'{m.attacker_id}: {m.unfit_reason}' for m in measured}))}); worst measured at "
            f"{eps_text(worst.epsilon_pm1)}: {worst.message}"
        )
        return GateRule(
            **base,
            attacker_id=worst.attacker_id,
            epsilon_pm1=worst.epsilon_pm1,
            value=worst.value,
            status="INCONCLUSIVE",
            message=message,
            breaking=earliest,
        )
    n_fit = len({m.attacker_id for m in evidence if m.fit})
    message = f"worst at {eps_text(worst.epsilon_pm1)}, attacker {worst.attacker_id}: {worst.message}; {where}"
    if tier == "transfer":
        message += f", most harmful of {n_fit} fit attacker(s)"
    if not worst.fit and worst.status == "FAIL":
        message += f"; measured with an unfit attacker ({worst.unfit_reason}): still a FAIL, the attack did succeed"
    return GateRule(
        **base,
        attacker_id=worst.attacker_id,
        epsilon_pm1=worst.epsilon_pm1,
        value=worst.value,
        status=worst.status,
        message=message,
        breaking=earliest,
    )


def worst_over_attacks(row_id: str, rules: list[GateRule], criterion: Criterion) -> GateRule:
    """A threat's worst case over all its attacks for one criterion: its most severe rule, ties by the harm."""

    def rank(r: GateRule) -> tuple[int, float]:
        if r.value is None or not r.value.finite:
            return SEVERITY[r.status], -math.inf
        return SEVERITY[r.status], -r.value.low if criterion.at_least else r.value.high

    worst = max(rules, key=rank)
    earliest = min(
        (r.breaking for r in rules if r.breaking is not None),
        key=lambda b: math.inf if b.epsilon_pm1 is None else b.epsilon_pm1,
        default=None,
    )
    return worst.model_copy(
        update={
            "id": f"{row_id}/{WORST_OVER_ATTACKS}/{criterion.key}",
            "rule": f"worst case over attacks: {worst.rule}",
            "attack_id": WORST_OVER_ATTACKS,
            "message": f"worst attack {worst.attack_id}; {worst.message}",
            "breaking": earliest,
        }
    )


def threats(
    scenario: Scenario, cells: Sequence[CellRecord], surrogates: Sequence[SurrogateResult], tiers: Sequence[TierStatus]
) -> list[tuple[str, str, list[str]]]:
    """(tier, threat row id, its attackers) in report order: the scenario's rows, then each bound tier that ran."""
    out = []
    for row in dict.fromkeys(r.row_id for r in scenario.surrogate_rows()):
        attackers = [s.id for s in surrogates if s.row_id == row and s.role == "attacker"]
        out.append(("transfer", row, attackers))
    for status in tiers:
        if status.available:
            out.append((status.tier, status.tier, [status.tier]))
    return out


def judge_rules(
    scenario: Scenario,
    cells: Sequence[CellRecord],
    surrogates: Sequence[SurrogateResult],
    choices: Sequence[EpsilonChoice],
    breaking: Sequence[BreakingEpsilon],
    tiers: Sequence[TierStatus],
) -> tuple[GateRule, ...]:
    """Every threat x attack x stated criterion (and each threat's worst case over its attacks)."""
    criteria = stated(scenario.gate)
    if not criteria:  # one inconclusive rule, so junit.xml, summary.md and the PDF count the same
        return (
            GateRule(
                id="gate/acceptance-criteria",
                tier="transfer",
                criterion_id=NO_CRITERIA_ID,
                threat_id="-",
                control_id="-",
                rule="acceptance criteria stated before the run",
                row_id="gate",
                attack_id="-",
                attacker_id=None,
                epsilon_pm1=None,
                value=None,
                status="INCONCLUSIVE",
                message=NO_CRITERIA,
                breaking=None,
            ),
        )
    ev = Evidence.of(scenario, cells, surrogates, choices, breaking)
    rules: list[GateRule] = []
    for tier, row, attackers in threats(scenario, cells, surrogates, tiers):
        attacks = [a.id for a in scenario.tier_attacks(tier)]
        for criterion, threshold in criteria:
            per_attack = [judge_rule(ev, tier, row, attackers, a, criterion, threshold) for a in attacks]
            rules += per_attack
            if len(per_attack) > 1:
                rules.append(worst_over_attacks(row, per_attack, criterion))
    return tuple(rules)


def verdict_of(statuses: Sequence[str]) -> Verdict:
    """ERROR > FAIL > INCONCLUSIVE > PASS; nothing judged is INCONCLUSIVE."""
    present = set(statuses)
    return next((v for v in ("ERROR", "FAIL", "INCONCLUSIVE") if v in present), "PASS" if present else "INCONCLUSIVE")
