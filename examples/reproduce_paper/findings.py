"""The paper's findings as claims about paired differences, and the comparisons that check each one on a
modality's committed runs (the rule that judges them is in `verdicts.py`).

Every comparison is made on the same test images at the paper's ε (0.02) unless it says otherwise, per target
architecture and per paper attack (FGSM, PGD; MI-FGSM is reported in the tables, not judged). A row of surrogates
is represented by the ensemble of its seeds (`verdicts.representative`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from committed import Committed, Run, same_images
from paper import EPS_TABLES
from protocol import ARCH_NAMES
from verdicts import (
    PREMISE_CONFIDENCE,
    Claim,
    Comparison,
    Scored,
    Verdict,
    at_chance,
    auc_difference,
    judge,
    no_sibling_transfer,
    premise,
    relative_difference,
    representative,
    unfit,
)

PAPER_ATTACKS = ("fgsm", "pgd")  # the attacks the paper's findings rest on
ATTACK_NAMES = {"fgsm": "FGSM", "pgd": "PGD", "mifgsm": "MI-FGSM"}
CONTROL_TOLERANCE_AUC = 0.01  # finding 6: the paper's "barely": control noise at most 0.01 AUC below clean
IMMUNE_RELATIVE_AUC = 0.96  # finding 8: the paper's "nearly immune": at least 96 % of clean AUC


@dataclass(frozen=True)
class Attacked:
    """A target's scores under one row's attacker at one attack and ε, or why there are none to use."""

    run: Run | None
    adversarial: np.ndarray | None
    control: np.ndarray | None
    blockers: tuple[str, ...]
    caveats: tuple[str, ...] = ()  # `verdicts.no_sibling_transfer`


def attacked(run: Run | None, what: str, row: str, kind: str, eps: float, *, fitness: bool = True) -> Attacked:
    """Look up `row`'s representative attacker in `run` and its cell; block on a missing run, row or cell, a
    target at chance and (with `fitness`) an attacker unfit for this attack (`verdicts.unfit`)."""
    if run is None:
        return Attacked(None, None, None, (f"no run against the {what}",))
    blockers = at_chance(run.results.cells[0].auc_clean, f"the {what}") if run.results.cells else ()
    attacker = representative(run.results.surrogates, row)
    if attacker is None:
        return Attacked(run, None, None, blockers + (f"{run.name}: no ensemble or single surrogate for row {row}",))
    cells = run.cells(attacker=attacker.id, kind=kind, eps=eps)
    if not cells:
        return Attacked(run, None, None, blockers + (f"{run.name}: no {kind} cell at ε {eps:g} for row {row}",))
    caveats: tuple[str, ...] = ()
    if fitness:
        where, attack_id = f"row {row} against the {what}", cells[0].attack_id
        blockers += unfit(attacker, run.results.surrogates, where, attack_id)
        caveats = no_sibling_transfer(attacker, run.results.surrogates, where, attack_id)
    adversarial, control = run.scores(cells[0])
    return Attacked(run, adversarial, control, blockers, caveats)


def target_name(arch: str, init: str, split: str = "d1") -> str:
    return f"{ARCH_NAMES.get(arch, arch)} {'IN' if init == 'imagenet' else 'R'} target ({split})"


def _relative(label: str, a: Attacked, b: Attacked, extra: tuple[str, ...] = ()) -> Comparison:
    """a's relative AUC minus b's, on the same images (a and b may be different targets)."""
    blockers = tuple(dict.fromkeys(a.blockers + b.blockers + extra))
    if blockers:
        return Comparison(label, None, blockers)
    same_images(a.run, b.run)
    y, groups = a.run.clean.y, a.run.bootstrap_groups
    return Comparison(
        label,
        relative_difference(
            y, groups, Scored(a.run.clean.scores, a.adversarial), Scored(b.run.clean.scores, b.adversarial)
        ),
        caveats=tuple(dict.fromkeys(a.caveats + b.caveats)),
    )


def _per_arch(c: Committed, experiment: str, build: Callable[[str], list[Comparison]]) -> list[Comparison]:
    """`build(arch)` for each target architecture the experiment was run against; one blocked comparison if none."""
    archs = c.archs(experiment)
    if not archs:
        return [Comparison(experiment, None, (f"no {experiment} run committed for this modality",))]
    return [comparison for arch in archs for comparison in build(arch)]


def _rows_compared(experiment: str, init: str, row_a: str, row_b: str) -> Callable[[Committed], list[Comparison]]:
    """One target per architecture, two rows of surrogates: relative AUC under row_a minus under row_b."""

    def build(c: Committed) -> list[Comparison]:
        def one(arch: str) -> list[Comparison]:
            run, what = c.run(experiment, arch, init), target_name(arch, init)
            return [
                _relative(
                    f"{what}, {ATTACK_NAMES[kind]}: {row_a} − {row_b}",
                    attacked(run, what, row_a, kind, EPS_TABLES),
                    attacked(run, what, row_b, kind, EPS_TABLES),
                )
                for kind in PAPER_ATTACKS
            ]

        return _per_arch(c, experiment, one)

    return build


def _pretraining_pairs(c: Committed) -> list[Comparison]:
    """Finding 1: IN target under IN surrogates minus R target under R surrogates, if IN raises clean AUC."""

    def one(arch: str) -> list[Comparison]:
        run_in, run_r = c.run("pretraining", arch, "imagenet"), c.run("pretraining", arch, "random")
        condition: tuple[str, ...] = ()
        if run_in is not None and run_r is not None:
            same_images(run_in, run_r)
            gain = auc_difference(run_in.clean.y, run_in.bootstrap_groups, run_in.clean.scores, run_r.clean.scores)
            condition = premise(gain(PREMISE_CONFIDENCE), f"{ARCH_NAMES.get(arch, arch)}: IN − R clean AUC")
        return [
            _relative(
                f"{ARCH_NAMES.get(arch, arch)}, {ATTACK_NAMES[kind]}: IN→IN − R→R",
                attacked(run_in, target_name(arch, "imagenet"), "same-imagenet-d1", kind, EPS_TABLES),
                attacked(run_r, target_name(arch, "random"), "same-random-d1", kind, EPS_TABLES),
                condition,
            )
            for kind in PAPER_ATTACKS
        ]

    return _per_arch(c, "pretraining", one)


def _mismatched_init(c: Committed) -> list[Comparison]:
    """Finding 2: matched minus mismatched surrogate initialisation, for IN and for R targets."""
    return _rows_compared("pretraining", "imagenet", "same-imagenet-d1", "same-random-d1")(c) + _rows_compared(
        "pretraining", "random", "same-random-d1", "same-imagenet-d1"
    )(c)


def _control_noise(c: Committed) -> list[Comparison]:
    """Finding 6: clean minus control AUC, the row's ensemble's control noise at ε 0.02 (fitness not needed: the
    control is the attacker's perturbation shuffled, noise of the same size whatever the attacker learned)."""

    def one(arch: str) -> list[Comparison]:
        run, what, out = c.run("perturbation_degree", arch, "random"), target_name(arch, "random"), []
        for kind in PAPER_ATTACKS:
            label = f"{what}, {ATTACK_NAMES[kind]} control: clean − control"
            s = attacked(run, what, "same-random-d1", kind, EPS_TABLES, fitness=False)
            if s.blockers:
                out.append(Comparison(label, None, s.blockers))
                continue
            clean = s.run.clean
            out.append(Comparison(label, auc_difference(clean.y, s.run.bootstrap_groups, clean.scores, s.control)))
        return out

    return _per_arch(c, "perturbation_degree", one)


def _falls_with_epsilon(c: Committed) -> list[Comparison]:
    """Finding 7a: adversarial over control AUC at the sweep's largest ε minus at its smallest (below 0: the
    attack's own effect grows with ε, beyond what the same amount of shuffled noise does)."""

    def one(arch: str) -> list[Comparison]:
        run, what, out = c.run("perturbation_degree", arch, "random"), target_name(arch, "random"), []
        if run is None:
            return [Comparison(what, None, (f"no run against the {what}",))]
        grid = sorted({cell.epsilon_pm1 for cell in run.results.cells})
        for kind in PAPER_ATTACKS:
            label = f"{what}, {ATTACK_NAMES[kind]}: ε {grid[-1]:g} − ε {grid[0]:g}"
            hi, lo = (attacked(run, what, "same-random-d1", kind, e) for e in (grid[-1], grid[0]))
            blockers = tuple(dict.fromkeys(hi.blockers + lo.blockers))
            if blockers:
                out.append(Comparison(label, None, blockers))
                continue
            interval = relative_difference(
                run.clean.y,
                run.bootstrap_groups,
                Scored(hi.control, hi.adversarial),
                Scored(lo.control, lo.adversarial),
            )
            out.append(Comparison(label, interval))
        return out

    return _per_arch(c, "perturbation_degree", one)


def _fgsm_vs_pgd(c: Committed) -> list[Comparison]:
    """Finding 7b: relative AUC under FGSM minus under PGD, the same attacker, ε 0.02."""

    def one(arch: str) -> list[Comparison]:
        run, what = c.run("perturbation_degree", arch, "random"), target_name(arch, "random")
        fgsm, pgd = (attacked(run, what, "same-random-d1", k, EPS_TABLES) for k in PAPER_ATTACKS)
        return [_relative(f"{what}: FGSM − PGD", fgsm, pgd)]

    return _per_arch(c, "perturbation_degree", one)


def _small_targets(c: Committed) -> list[Comparison]:
    """Finding 8: relative AUC minus 1 of random-init targets on d1/10 under random-init surrogates on d2."""

    def one(arch: str) -> list[Comparison]:
        run, what, out = c.run("small_data", arch, "random"), target_name(arch, "random", "d1/10"), []
        for row in ("same-random-d2", "different-random-d2"):
            for kind in PAPER_ATTACKS:
                label = f"{what}, {row}, {ATTACK_NAMES[kind]}: relative AUC − 1"
                s = attacked(run, what, row, kind, EPS_TABLES)
                if s.blockers:
                    out.append(Comparison(label, None, s.blockers))
                    continue
                clean = s.run.clean
                unmoved = Scored(clean.scores, clean.scores)  # relative AUC 1: the difference is relative AUC - 1
                interval = relative_difference(
                    clean.y, s.run.bootstrap_groups, Scored(clean.scores, s.adversarial), unmoved
                )
                out.append(Comparison(label, interval, caveats=s.caveats))
        return out

    return _per_arch(c, "small_data", one)


@dataclass(frozen=True)
class Finding:
    key: str  # "1" ... "8", with "7a"/"7b" for the two halves of finding 7
    statement: str  # the paper's finding (../shared/paper/TABLES.md)
    claim: Claim
    build: Callable[[Committed], list[Comparison]]


_DIRECTION = dict(side="below", bound=0.0, every=False)
FINDINGS: tuple[Finding, ...] = (
    Finding(
        "1",
        "Pre-trained pairs transfer more when pre-training helps clean AUC",
        Claim(
            **_DIRECTION,
            measure="relative AUC of the IN target under IN surrogates minus the R target under R "
            "surrogates (same architecture, d1); judged only where IN − R clean AUC is above 0 at 95 %",
        ),
        _pretraining_pairs,
    ),
    Finding(
        "2",
        "Mismatched initialisation transfers poorly",
        Claim(
            **_DIRECTION,
            measure="relative AUC under surrogates of the target's initialisation minus under the "
            "other initialisation (same architecture, d1), for IN and for R targets",
        ),
        _mismatched_init,
    ),
    Finding(
        "3",
        "A surrogate on disjoint data of equal size transfers less",
        Claim(
            **_DIRECTION,
            measure="relative AUC of the R target (d1) under R surrogates on d1 minus on d2 (same architecture)",
        ),
        _rows_compared("data_disparity", "random", "same-random-d1", "same-random-d2"),
    ),
    Finding(
        "4",
        "A smaller surrogate set transfers even less",
        Claim(
            **_DIRECTION,
            measure="relative AUC of the R target under R surrogates on d2 minus on d2/2 (same architecture)",
        ),
        _rows_compared("data_disparity", "random", "same-random-d2", "same-random-d2/2"),
    ),
    Finding(
        "5",
        "Architecture mismatch lowers transfer",
        Claim(
            **_DIRECTION,
            measure="relative AUC of the R target under same-architecture minus different-architecture R surrogates (d1)",
        ),
        _rows_compared("data_disparity", "random", "same-random-d1", "different-random-d1"),
    ),
    Finding(
        "6",
        f"Control noise barely lowers AUC at ε = {EPS_TABLES:g} (≤ {CONTROL_TOLERANCE_AUC:g} below clean)",
        Claim(
            "below",
            CONTROL_TOLERANCE_AUC,
            True,
            f"clean minus control AUC, which must stay below {CONTROL_TOLERANCE_AUC:g} in every comparison",
        ),
        _control_noise,
    ),
    Finding(
        "7a",
        "AUC falls as ε grows (the paper adds: and levels off, which Table 2 shows and no rule judges)",
        Claim(**_DIRECTION, measure="adversarial ÷ control AUC at the sweep's largest ε minus at its smallest ε"),
        _falls_with_epsilon,
    ),
    Finding(
        "7b",
        "FGSM transfers at least as well as PGD",
        Claim(**_DIRECTION, measure=f"relative AUC under FGSM minus under PGD, same attacker, ε = {EPS_TABLES:g}"),
        _fgsm_vs_pgd,
    ),
    Finding(
        "8",
        f"Random-init targets trained on small data are nearly immune (≥ {IMMUNE_RELATIVE_AUC:.0%} of clean AUC)",
        Claim(
            "above",
            IMMUNE_RELATIVE_AUC - 1.0,
            True,
            f"relative AUC minus 1 of R targets on d1/10 under R surrogates on d2, which must stay above {IMMUNE_RELATIVE_AUC - 1:+.2f} in every comparison",
        ),
        _small_targets,
    ),
)


def verdicts(committed: Committed) -> dict[str, Verdict]:
    """Each finding judged on one modality's runs."""
    return {f.key: judge(f.build(committed), f.claim) for f in FINDINGS}
