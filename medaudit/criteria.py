"""Acceptance criteria judged from records: at every admissible epsilon, on the most harmful fit surrogate, per attack.

Pure: the scenario, the cell records, the surrogates (with their fitness) and the epsilon choice in; the gate
rules, the verdict and the worst case out. A criterion passes only when its judged 95% bound meets it (ISO/IEC TR
24029-1 objective criteria); an interval that straddles the threshold is INCONCLUSIVE. The attacker keeps whichever
surrogate and whichever admissible epsilon hurts the target most, so each rule reports the worst of them. Only fit
surrogates are evidence of robustness; a failure measured with an unfit one is still a failure (the attack worked).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from medaudit.data import GREY_LEVELS_PER_PM1
from medaudit.results import (
    CellRecord,
    EpsilonChoice,
    GateRule,
    IntervalRecord,
    OperatingPoint,
    Outcome,
    SurrogateResult,
    Verdict,
    WorstCase,
    fmt_interval,
    threshold_text,
)
from medaudit.scenario import Scenario

WORST_OVER_ATTACKS = "worst-over-attacks"  # the attack id of a row's worst case over all attacks
_SEVERITY = {"PASS": 0, "INCONCLUSIVE": 1, "FAIL": 2, "ERROR": 3}  # a rule reports the most severe outcome it saw
_EPS_DIGITS = 9  # epsilons are matched to cells after rounding (grid values, not computed ones)


@dataclass(frozen=True)
class Criterion:
    """One acceptance criterion of the scenario's `gate` section, and its line in the risk file."""

    id: str  # stable id a risk file cites, e.g. `C-REL-AUC`
    key: str  # last part of a rule id, e.g. `min-relative-auc`
    threshold_field: str  # the `GateSection` field holding its threshold (None: not judged)
    cell_field: str  # the `CellRecord` interval it judges
    at_least: bool  # True: lower bound >= threshold; False: upper bound <= threshold
    endpoint: str  # what is measured, in words
    hazardous_situation: str  # AAMI TIR34971: the situation a failure exposes a patient to
    harm: str  # the possible harm that situation can lead to
    control_id: str  # the suggested control (a key of CONTROLS)


CRITERIA = (
    Criterion(
        "C-REL-AUC",
        "min-relative-auc",
        "min_relative_auc",
        "relative_auc",
        True,
        "relative AUC under attack (adversarial / clean)",
        "an edited image reaches the target and its ranking of diseased above healthy cases degrades",
        "missed or delayed diagnosis (false negatives), unnecessary follow-up (false positives)",
        "CTL-IMAGE-INTEGRITY",
    ),
    Criterion(
        "C-ADV-DROP",
        "max-adversarial-specific-drop",
        "max_adversarial_specific_drop",
        "adversarial_specific_drop",
        False,
        "adversarial-specific AUC drop (control noise − adversarial)",
        "a crafted perturbation, beyond what noise of the same size does, changes the target's decisions",
        "missed or delayed diagnosis, unnecessary follow-up, loss of clinicians' trust in the device",
        "CTL-ADV-HARDEN",
    ),
    Criterion(
        "C-NOISE",
        "min-control-relative-auc",
        "min_control_relative_auc",
        "relative_auc_control",
        True,
        "noise fragility: relative AUC under control noise (control / clean)",
        "ordinary, uncrafted noise of the attack's size (acquisition, compression) degrades the target",
        "wrong decisions on degraded images without any attacker: missed findings, false alarms",
        "CTL-NOISE-ROBUST",
    ),
)
CONTROLS = {  # control id -> the control a manufacturer can put in its risk file
    "CTL-IMAGE-INTEGRITY": "protect the image path from acquisition to the model (signed DICOM, checksums, access "
    "control) so images cannot be edited in transit; keep the model and its development data "
    "confidential",
    "CTL-ADV-HARDEN": "harden the model (adversarial training or input purification) and re-audit, including "
    "with an attacker who adapts to the defence",
    "CTL-NOISE-ROBUST": "train with noise augmentation and add an input-quality check that refers degraded "
    "images to a human reader",
}
NO_CRITERIA_ID = "C-NONE"  # the criterion id of the one rule recorded when the scenario states no criterion
NO_CRITERIA = (
    "No acceptance criteria were stated: the scenario's `gate` sets none of min_relative_auc, "
    "max_adversarial_specific_drop, min_control_relative_auc, so nothing was judged and the verdict is "
    "INCONCLUSIVE. State the criteria in the scenario before the run."
)


def threat_id(row_id: str) -> str:
    """The risk file's id for the threat one scenario row describes."""
    return f"T-{row_id}"


def judge_interval(iv: IntervalRecord, criterion: Criterion, threshold: float) -> tuple[Outcome, str]:
    """One interval against one criterion: PASS when the judged bound meets it, FAIL when the whole interval misses."""
    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return "ERROR", (
            f"the interval is undefined ({iv.degenerate} of {iv.resamples} resamples had one class "
            "only); use a larger test set"
        )
    t, lo, hi = threshold_text(threshold), f"{iv.low:.3f}", f"{iv.high:.3f}"
    if criterion.at_least:
        if iv.low >= threshold:
            return "PASS", f"lower bound {lo} ≥ {t}"
        if iv.high < threshold:
            return "FAIL", f"the whole interval ({lo}, {hi}) lies below {t}"
        return "INCONCLUSIVE", f"interval ({lo}, {hi}) straddles {t}: the lower bound misses it (point {iv.point:.3f})"
    if iv.high <= threshold:
        return "PASS", f"upper bound {hi} ≤ {t}"
    if iv.low > threshold:
        return "FAIL", f"the whole interval ({lo}, {hi}) lies above {t}"
    return "INCONCLUSIVE", f"interval ({lo}, {hi}) straddles {t}: the upper bound misses it (point {iv.point:.3f})"


def rule_text(criterion: Criterion, threshold: float, confidence: float) -> str:
    bound, op = ("lower", "≥") if criterion.at_least else ("upper", "≤")
    return f"{criterion.endpoint}, {bound} {100 * confidence:g}% bound {op} {threshold_text(threshold)}"


@dataclass(frozen=True)
class _Measured:
    """One (surrogate, epsilon) judged for one criterion."""

    surrogate: SurrogateResult
    epsilon_pm1: float
    value: IntervalRecord | None
    status: Outcome
    message: str

    def rank(self, criterion: Criterion) -> tuple[int, float]:
        """Larger is worse for the target: the outcome first, then the judged bound (ties: the most harmful)."""
        if self.value is None or not math.isfinite(self.value.low) or not math.isfinite(self.value.high):
            return _SEVERITY[self.status], -math.inf
        return _SEVERITY[self.status], -self.value.low if criterion.at_least else self.value.high


def _eps_key(e: float) -> float:
    return round(e, _EPS_DIGITS)


def _eps_text(e: float) -> str:
    return f"ε {e:g} ({e * GREY_LEVELS_PER_PM1:.3g} grey levels)"


def _fit(s: SurrogateResult) -> bool:
    if s.fitness is None:
        raise ValueError(f"surrogate {s.id} has no fitness: finalize assesses fitness before judging")
    return s.fitness.fit


def _unfit_reasons(s: SurrogateResult) -> str:
    return "; ".join(s.fitness.reasons) or "unfit"


def _no_epsilon_message(choice: EpsilonChoice) -> str:
    smallest = min(choice.curve, default=None)
    tried = f"; smallest ε {smallest[0]:g} gave {smallest[1]:.3f}" if smallest else ""
    return f"no ε met the SSIM bound (mean SSIM ≥ {choice.bound:g}{tried}): extend `epsilons_pm1` downward"


def _rows(
    scenario: Scenario, surrogates: Sequence[SurrogateResult], cells: Sequence[CellRecord]
) -> dict[str, list[SurrogateResult]]:
    """Row id -> its surrogates (seeds and ensembles), scenario rows first, in order."""
    rows: dict[str, list[SurrogateResult]] = {row.row_id: [] for row in scenario.surrogate_rows()}
    for s in surrogates:
        rows.setdefault(s.row_id, []).append(s)
    for c in cells:
        rows.setdefault(c.row_id, [])
    return rows


class _Judge:
    """The shared inputs of one judgement, so each rule is built from (row, attack, criterion) alone."""

    def __init__(self, scenario: Scenario, cells: Sequence[CellRecord], choices: Sequence[EpsilonChoice]):
        self.confidence = scenario.bootstrap.confidence
        self.cells = {(c.surrogate_id, c.attack_id, _eps_key(c.epsilon_pm1)): c for c in cells}
        self.choices = {c.attack_id: c for c in choices}

    def rule(
        self, row_id: str, surrogates: list[SurrogateResult], attack_id: str, criterion: Criterion, threshold: float
    ) -> GateRule:
        base = dict(
            id=f"{row_id}/{attack_id}/{criterion.key}",
            criterion_id=criterion.id,
            threat_id=threat_id(row_id),
            control_id=criterion.control_id,
            rule=rule_text(criterion, threshold, self.confidence),
            row_id=row_id,
            attack_id=attack_id,
        )
        choice = self.choices.get(attack_id)
        if choice is None:
            return GateRule(
                **base,
                surrogate_id=None,
                epsilon_pm1=None,
                value=None,
                status="ERROR",
                message=f"no ε choice recorded for attack {attack_id}; re-run the audit",
            )
        if not choice.admissible_epsilons_pm1:
            return GateRule(
                **base,
                surrogate_id=None,
                epsilon_pm1=None,
                value=None,
                status="ERROR",
                message=_no_epsilon_message(choice),
            )
        if not surrogates:
            return GateRule(
                **base,
                surrogate_id=None,
                epsilon_pm1=None,
                value=None,
                status="ERROR",
                message=f"no surrogate of row {row_id} in the results; the run is incomplete, re-run the audit",
            )
        measured = [
            self._measure(s, attack_id, e, criterion, threshold)
            for s in surrogates
            for e in choice.admissible_epsilons_pm1
        ]
        where = f"judged at every admissible ε ({', '.join(f'{e:g}' for e in choice.admissible_epsilons_pm1)})"
        # a fit surrogate's result is evidence either way; an unfit one's only when the attack succeeded anyway
        evidence = [m for m in measured if _fit(m.surrogate) or m.status in ("FAIL", "ERROR")]
        if not evidence:
            worst = max(measured, key=lambda m: m.rank(criterion))
            reasons = "; ".join(f"{s.id}: {_unfit_reasons(s)}" for s in surrogates)
            return GateRule(
                **base,
                surrogate_id=worst.surrogate.id,
                epsilon_pm1=worst.epsilon_pm1,
                value=worst.value,
                status="INCONCLUSIVE",
                message=f"no fit surrogate in this row, so its results are not evidence of robustness "
                f"({reasons}); worst measured at {_eps_text(worst.epsilon_pm1)}: {worst.message}",
            )
        worst = max(evidence, key=lambda m: m.rank(criterion))
        n_fit = sum(_fit(s) for s in surrogates)
        message = (
            f"worst at {_eps_text(worst.epsilon_pm1)}, surrogate {worst.surrogate.id}: {worst.message}; "
            f"{where}, most harmful of {n_fit} fit surrogate(s)"
        )
        if not _fit(worst.surrogate) and worst.status == "FAIL":
            message += (
                f"; measured with an unfit surrogate ({_unfit_reasons(worst.surrogate)}): still a FAIL, "
                "the attack did succeed against the target"
            )
        return GateRule(
            **base,
            surrogate_id=worst.surrogate.id,
            epsilon_pm1=worst.epsilon_pm1,
            value=worst.value,
            status=worst.status,
            message=message,
        )

    def _measure(
        self, s: SurrogateResult, attack_id: str, e: float, criterion: Criterion, threshold: float
    ) -> _Measured:
        cell = self.cells.get((s.id, attack_id, _eps_key(e)))
        if cell is None:
            return _Measured(
                s,
                e,
                None,
                "ERROR",
                f"no cell for surrogate {s.id}, attack {attack_id} at ε {e:g}; the run is incomplete, re-run the audit",
            )
        value: IntervalRecord = getattr(cell, criterion.cell_field)
        status, message = judge_interval(value, criterion, threshold)
        return _Measured(s, e, value, status, message)


def _worst_over_attacks(row_id: str, rules: list[GateRule], criterion: Criterion) -> GateRule:
    """The row's worst case over all attacks for one criterion: its most severe rule, ties by the most harmful bound."""

    def rank(r: GateRule) -> tuple[int, float]:
        if r.value is None or not (math.isfinite(r.value.low) and math.isfinite(r.value.high)):
            return _SEVERITY[r.status], -math.inf
        return _SEVERITY[r.status], -r.value.low if criterion.at_least else r.value.high

    worst = max(rules, key=rank)
    return worst.model_copy(
        update={
            "id": f"{row_id}/{WORST_OVER_ATTACKS}/{criterion.key}",
            "rule": f"worst case over attacks: {worst.rule}",
            "attack_id": WORST_OVER_ATTACKS,
            "message": f"worst attack {worst.attack_id}; {worst.message}",
        }
    )


def judge(
    scenario: Scenario,
    cells: Sequence[CellRecord],
    surrogates: Sequence[SurrogateResult],
    epsilon_choice: Sequence[EpsilonChoice],
) -> tuple[tuple[GateRule, ...], Verdict, WorstCase | None]:
    """Judge every scenario row x attack x stated criterion at every admissible epsilon.

    Returns the rules (per row: each attack, then the worst over attacks when there are several), the verdict
    (ERROR > FAIL > INCONCLUSIVE > PASS; with no criterion stated, one INCONCLUSIVE rule saying NO_CRITERIA)
    and the worst case: the admissible cell with the lowest adversarial AUC. Every surrogate needs its fitness.
    """
    worst = worst_case(cells, epsilon_choice)
    stated = [(c, getattr(scenario.gate, c.threshold_field)) for c in CRITERIA]
    stated = [(c, t) for c, t in stated if t is not None]
    if not stated:  # one inconclusive rule, so junit.xml, summary.md and the PDF count the same
        rule = GateRule(
            id="gate/acceptance-criteria",
            criterion_id=NO_CRITERIA_ID,
            threat_id="-",
            control_id="-",
            rule="acceptance criteria stated before the run",
            row_id="gate",
            attack_id="-",
            surrogate_id=None,
            epsilon_pm1=None,
            value=None,
            status="INCONCLUSIVE",
            message=NO_CRITERIA,
        )
        return (rule,), "INCONCLUSIVE", worst
    rows = _rows(scenario, surrogates, cells)
    attacks = list(dict.fromkeys([c.attack_id for c in epsilon_choice] + [c.attack_id for c in cells]))
    if not attacks:
        rule = GateRule(
            id="gate/no-attacks",
            criterion_id="-",
            threat_id="-",
            control_id="-",
            rule="the audit measured at least one attack",
            row_id="gate",
            attack_id="-",
            surrogate_id=None,
            epsilon_pm1=None,
            value=None,
            status="ERROR",
            message="no attack in the results: no epsilon choice and no cell was recorded; re-run the audit",
        )
        return (rule,), "ERROR", worst
    j = _Judge(scenario, cells, epsilon_choice)
    rules: list[GateRule] = []
    for row_id, row_surrogates in rows.items():
        for criterion, threshold in stated:
            per_attack = [j.rule(row_id, row_surrogates, a, criterion, threshold) for a in attacks]
            rules += per_attack
            if len(per_attack) > 1:
                rules.append(_worst_over_attacks(row_id, per_attack, criterion))
    rules.sort(
        key=lambda r: (
            list(rows).index(r.row_id),
            r.attack_id == WORST_OVER_ATTACKS,
            (attacks + [WORST_OVER_ATTACKS]).index(r.attack_id),
        )
    )
    statuses = {r.status for r in rules}
    verdict: Verdict = next(v for v in ("ERROR", "FAIL", "INCONCLUSIVE", "PASS") if v in statuses or v == "PASS")
    return tuple(rules), verdict, worst


def worst_case(cells: Sequence[CellRecord], epsilon_choice: Sequence[EpsilonChoice]) -> WorstCase | None:
    """The cell at an admissible epsilon with the lowest adversarial AUC (ties: lowest relative-AUC bound)."""
    admissible = {(c.attack_id, _eps_key(e)) for c in epsilon_choice for e in c.admissible_epsilons_pm1}
    candidates = [
        c
        for c in cells
        if (c.attack_id, _eps_key(c.epsilon_pm1)) in admissible and math.isfinite(c.auc_adversarial.point)
    ]
    if not candidates:
        return None
    c = min(candidates, key=lambda c: (c.auc_adversarial.point, c.relative_auc.low))
    over = " on average over the classes" if len(c.per_class_auc_clean) > 1 else ""
    statement = (
        f"The lowest adversarial AUC within the perceptibility bound came from attack {c.attack_id} at ε = "
        f"{c.epsilon_pm1:g} in [-1, 1] units ({c.epsilon_grey_levels:.3g} grey levels of 255), crafted on surrogate "
        f"{c.surrogate_id} of row {c.row_id}: the target's AUC fell from {fmt_interval(c.auc_clean)} to "
        f"{fmt_interval(c.auc_adversarial)}, {100 * c.relative_auc.point:.0f}% of its clean value. In plain terms: "
        "with "
        f"every pixel changed by at most {c.epsilon_grey_levels:.3g} grey levels, using a model the attacker trained "
        "without ever querying the target, the target ranked a positive case above a negative one in "
        f"{100 * c.auc_adversarial.point:.0f}% of pairs{over} instead of {100 * c.auc_clean.point:.0f}% "
        "(50% is chance)."
    )
    if c.operating_point is not None:
        statement += " " + operating_point_sentence(c.operating_point)
    return WorstCase(
        row_id=c.row_id,
        surrogate_id=c.surrogate_id,
        attack_id=c.attack_id,
        epsilon_pm1=c.epsilon_pm1,
        epsilon_grey_levels=c.epsilon_grey_levels,
        auc_clean=c.auc_clean,
        auc_adversarial=c.auc_adversarial,
        relative_auc=c.relative_auc,
        statement=statement,
    )


def operating_point_sentence(op: OperatingPoint) -> str:
    """The clinical effect at the stated threshold, in one sentence."""
    return (
        f"At the clinical threshold {op.threshold:.3g} ({op.threshold_rule}), sensitivity went from "
        f"{op.sensitivity_clean:.2f} to {op.sensitivity_adversarial:.2f} and specificity from "
        f"{op.specificity_clean:.2f} to {op.specificity_adversarial:.2f}: {op.true_positives_lost} true positives "
        f"lost and {op.false_positives_created} false positives created."
    )
