"""What the attacks mean for patients, and what the test set can show: pure functions of the measured cells.

The worst case is one cell over every tier: the admissible cell that left the target the least of its clean AUC.
Its decisions at the locked threshold are counted both ways (a perturbation can also flag a missed case or clear a
false alarm), beside noise of the same size, and what crafting adds is the difference. Per 1,000 screened patients:
net missed diseased = 1000 x prevalence x (lost - gained) / positives, net false alarms = 1000 x (1 - prevalence) x
(created - removed) / negatives. The words are built from the same integers, so they cannot contradict them.

Sample size: the Hanley & McNeil (1982) standard error of an AUC A on P positives and N negatives,
SE^2 = (A(1-A) + (P-1)(Q1-A^2) + (N-1)(Q2-A^2)) / (P N), Q1 = A/(2-A), Q2 = 2A^2/(1+A); the smallest drop the set
tells from none at confidence c is z_{(1+c)/2} x SE (relative: divided by A). A criterion whose margin (1 - the
relative-AUC threshold, or the allowed drop) is smaller cannot be shown to hold on these images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

from medaudit.core import GREY_LEVELS_PER_PM1
from medaudit.records import (
    CRITERIA,
    CellRecord,
    DecisionTally,
    EpsilonChoice,
    OperatingPoint,
    SampleSize,
    WorstCase,
    fmt_interval,
)
from medaudit.scenario import Scenario

PER_SCREENED = 1000  # the per-patient figures are per this many screened patients
_EPS_DIGITS = 9  # epsilons compared as keys, rounded to this many decimals
TIER_WORDS = {
    "transfer": "transfer attacker (a model it trained itself, never querying the target)",
    "query": "query attacker (the target's scores only)",
    "whitebox": "white-box attacker (the target's own weights)",
}
CARD_PREVALENCE = "the card's"
TEST_PREVALENCE = "the test set's; the card states none"


def tally(
    lost: int, gained: int, created: int, removed: int, positives: int, negatives: int, prevalence: float
) -> DecisionTally:
    """Decision changes both ways, their net effect on sensitivity and specificity, and per 1,000 screened."""
    return DecisionTally(
        true_positives_lost=lost,
        true_positives_gained=gained,
        false_positives_created=created,
        false_positives_removed=removed,
        sensitivity_change=(gained - lost) / positives if positives else 0.0,
        specificity_change=(removed - created) / negatives if negatives else 0.0,
        missed_per_1000=PER_SCREENED * prevalence * (lost - gained) / positives if positives else 0.0,
        false_alarms_per_1000=PER_SCREENED * (1 - prevalence) * (created - removed) / negatives if negatives else 0.0,
    )


def crafting_tally(attack: DecisionTally, noise: DecisionTally) -> DecisionTally:
    """What crafting adds beyond noise of the same size: attack minus noise, field by field."""
    return DecisionTally(**{k: getattr(attack, k) - getattr(noise, k) for k in DecisionTally.model_fields})


def _tallies(op: OperatingPoint, prevalence: float) -> tuple[DecisionTally, DecisionTally, DecisionTally]:
    p, n = op.positives, op.negatives
    attack = tally(
        op.true_positives_lost, op.true_positives_gained, op.false_positives_created, op.false_positives_removed, p, n,
        prevalence,
    )  # fmt: skip
    noise = tally(
        op.true_positives_lost_control,
        op.true_positives_gained_control,
        op.false_positives_created_control,
        op.false_positives_removed_control,
        p,
        n,
        prevalence,
    )
    return attack, noise, crafting_tally(attack, noise)


def _net(n: float, more: str, fewer: str) -> str:
    """`3 more missed diseased patients`, `2 fewer ...`, or `no change in ...`: the sign said in words."""
    if round(n, 1) == 0:
        return f"no change in {more.split(' ', 1)[1]}"
    return f"{abs(n):.3g} {more if n > 0 else fewer}"


def _changes(t: DecisionTally) -> str:
    return (
        f"lost {t.true_positives_lost} true positives and gained {t.true_positives_gained} (net sensitivity "
        f"{t.sensitivity_change:+.2f}); it created {t.false_positives_created} false positives and removed "
        f"{t.false_positives_removed} (net specificity {t.specificity_change:+.2f})"
    )


def _per_1000(t: DecisionTally) -> str:
    return (
        f"{_net(t.missed_per_1000, 'more missed diseased patients', 'fewer missed diseased patients')} and "
        f"{_net(t.false_alarms_per_1000, 'more false alarms', 'fewer false alarms')}"
    )


def statement(w: WorstCase) -> str:
    """The worst case in plain words, every number taken from the record beside it."""
    grey = f"{w.epsilon_grey_levels:.3g} grey level{'' if w.epsilon_grey_levels == 1 else 's'}"
    text = (
        f"Worst case over every tier: the {TIER_WORDS[w.tier]}, "
        f"{'' if w.attacker_id == w.tier else f'{w.attacker_id} ({w.row_id}) '}with {w.attack_id}, at ε {grey} "
        f"({w.epsilon_pm1:.3g} in [-1, 1] units), on {w.n_images} test images: AUC {fmt_interval(w.auc_clean)} fell "
        f"to {fmt_interval(w.auc_adversarial)}, {100 * w.relative_auc.point:.0f}% of its clean value."
    )
    if w.attack is None or w.noise is None or w.crafting is None:
        return text
    return text + (
        f" At the locked threshold {w.threshold:.3g}, on {w.positives} diseased and {w.negatives} healthy cases, the "
        f"attack {_changes(w.attack)}. Noise of the same size {_changes(w.noise)}. Crafting adds "
        f"{w.crafting.true_positives_lost - w.crafting.true_positives_gained:+d} net missed diseased cases and "
        f"{w.crafting.false_positives_created - w.crafting.false_positives_removed:+d} net false alarms beyond noise. "
        f"Per {PER_SCREENED:,} screened patients at {w.prevalence:.0%} prevalence ({w.prevalence_source}): the attack "
        f"gives {_per_1000(w.attack)}; crafting beyond noise accounts for {_per_1000(w.crafting)}."
    )


def admissible_cells(cells: Sequence[CellRecord], choices: Sequence[EpsilonChoice]) -> list[CellRecord]:
    admissible = {(c.attack_id, round(e, _EPS_DIGITS)) for c in choices for e in c.admissible_epsilons_pm1}
    return [
        c
        for c in cells
        if (c.attack_id, round(c.epsilon_pm1, _EPS_DIGITS)) in admissible and math.isfinite(c.relative_auc.point)
    ]


def worst_case(
    cells: Sequence[CellRecord], choices: Sequence[EpsilonChoice], card_prevalence: float | None
) -> WorstCase | None:
    """The admissible cell of any tier with the lowest relative AUC (ties: lowest adversarial AUC), in patients'
    terms; the card's prevalence, else the cell's own share of positives, scales the per-1,000 figures."""
    candidates = admissible_cells(cells, choices)
    if not candidates:
        return None
    c = min(candidates, key=lambda c: (c.relative_auc.point, c.auc_adversarial.point, c.id))
    op = c.operating_point
    prevalence, source = (card_prevalence, CARD_PREVALENCE) if card_prevalence is not None else (None, TEST_PREVALENCE)
    attack = noise = crafting = None
    if op is not None:
        if prevalence is None:
            prevalence = op.positives / (op.positives + op.negatives)
        attack, noise, crafting = _tallies(op, prevalence)
    w = WorstCase(
        tier=c.tier,
        row_id=c.row_id,
        attacker_id=c.attacker_id,
        attack_id=c.attack_id,
        epsilon_pm1=c.epsilon_pm1,
        epsilon_grey_levels=c.epsilon_pm1 * GREY_LEVELS_PER_PM1,
        n_images=c.n_images,
        auc_clean=c.auc_clean,
        auc_adversarial=c.auc_adversarial,
        relative_auc=c.relative_auc,
        threshold=op.threshold if op else None,
        positives=op.positives if op else None,
        negatives=op.negatives if op else None,
        prevalence=prevalence,
        prevalence_source=source,
        attack=attack,
        noise=noise,
        crafting=crafting,
        statement="",
    )
    return w.model_copy(update={"statement": statement(w)})


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil (1982) standard error of an AUC on `positives` and `negatives` cases."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return math.sqrt(max(var, 0.0))


def margins(scenario: Scenario) -> dict[str, tuple[float, bool]]:
    """Each stated criterion's margin from no harm, and whether it is relative (a share of the clean AUC)."""
    gate, out = scenario.gate, {}
    for c in CRITERIA:
        threshold = getattr(gate, c.threshold_field)
        if threshold is not None:
            out[c.id] = (1.0 - threshold, True) if c.at_least else (threshold, False)
    return out


def sample_size(tier: str, cell: CellRecord, scenario: Scenario) -> SampleSize | None:
    """What the images of one of the tier's cells can show (binary tasks: the cell counts its classes)."""
    op = cell.operating_point
    if op is None or not op.positives or not op.negatives or not math.isfinite(cell.auc_clean.point):
        return None
    confidence = scenario.bootstrap.confidence
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    auc = cell.auc_clean.point
    drop = z * auc_standard_error(auc, op.positives, op.negatives)
    relative = drop / auc if auc > 0 else math.inf
    small = tuple(cid for cid, (m, rel) in margins(scenario).items() if (relative if rel else drop) > m)
    half = (cell.auc_clean.high - cell.auc_clean.low) / 2
    text = (
        f"{op.positives} positive and {op.negatives} negative test images; clean AUC {auc:.3f} ± {half:.3f} "
        f"({100 * confidence:g}% interval half-width); the smallest relative-AUC drop these images can tell from "
        f"none is {relative:.0%} ({drop:.3f} AUC)"
    )
    if small:
        text += f": too few to show that {', '.join(small)} hold{'s' if len(small) == 1 else ''}"
    return SampleSize(
        tier=tier,  # type: ignore[arg-type]
        images=cell.n_images,
        positives=op.positives,
        negatives=op.negatives,
        confidence=confidence,
        auc_clean=auc,
        auc_half_width=half,
        detectable_auc_drop=drop,
        detectable_relative_drop=relative,
        too_small_for=small,
        statement=text + ".",
    )


def sample_sizes(cells: Sequence[CellRecord], scenario: Scenario, tiers: Sequence[str]) -> tuple[SampleSize, ...]:
    """Per tier that ran, in `tiers` order: what its test images can show (its smallest cell: the fewest images)."""
    out = []
    for tier in tiers:
        mine = [c for c in cells if c.tier == tier]
        if mine:
            s = sample_size(tier, min(mine, key=lambda c: (c.n_images, c.id)), scenario)
            if s is not None:
                out.append(s)
    return tuple(out)
