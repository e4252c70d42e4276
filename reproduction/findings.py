"""The paper's findings as claims about paired differences, the comparisons that check each one on a modality's
runs (judged by `assess`), and the same difference read from the paper's own tables.

Comparisons are made on the same test images at the grid's ε nearest the paper's 0.02 (0.02 itself in a schema
2.0 run, the nearest point of the `auto` grid in 3.0), per target architecture and per paper attack (FGSM, PGD;
MI-FGSM is reported in the appendix, not judged). A row of surrogates is represented by the ensemble of its seeds,
chosen before looking at the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medaudit.core.metrics import Interval
from reproduction import paper
from reproduction.assess import (
    PREMISE_CONFIDENCE,
    Arm,
    Assessment,
    Claim,
    Comparison,
    Scored,
    assess,
    at_chance,
    auc_difference,
    premise,
    relative_difference,
)
from reproduction.protocol import ATTACK_NAMES, INIT_NAMES, arch_name, target_label
from reproduction.record import SurrogateView
from reproduction.runs import ModalityRuns, Run, same_images

PAPER_ATTACKS = paper.PAPER_ATTACKS  # FGSM and PGD
CONTROL_TOLERANCE_AUC = 0.01  # finding 6: the paper's "barely": control noise at most 0.01 AUC below clean
IMMUNE_RELATIVE_AUC = 0.96  # finding 8: the paper's "nearly immune": at least 96 % of clean AUC
NOT_FIXED = "`different` chosen by strength"  # the blocker of a `different` row not made under the fixed rule


def interval(iv) -> Interval:
    return Interval(iv.point, iv.low, iv.high, iv.confidence, 0, 0)


def representative(surrogates: list[SurrogateView]) -> SurrogateView | None:
    """The attacker that stands for a row: the ensemble of all its seeds, or its one surrogate; None otherwise."""
    seeds = [s for s in surrogates if not s.member_ids]
    ids = {s.id for s in seeds}
    ensemble = next((s for s in surrogates if s.member_ids and set(s.member_ids) == ids), None)
    return ensemble or (seeds[0] if len(seeds) == 1 else None)


@dataclass(frozen=True)
class Attacked:
    """A target's scores under one row's attacker at one attack and ε, or why there are none to use."""

    run: Run | None
    adversarial: np.ndarray | None
    control: np.ndarray | None
    blockers: tuple[str, ...]
    arm: Arm | None = None
    eps: float | None = None


def attacked(run: Run | None, row: str, kind: str, eps: float | None = None) -> Attacked:
    """`row`'s representative attacker against `run`'s target at `eps` (default: the grid's ε nearest 0.02)."""
    if run is None:
        return Attacked(None, None, None, ("run absent",))
    what = target_label(run.arch, run.init, run.split)
    blockers = at_chance(interval(run.record.cells[0].auc_clean), what) if run.record.cells else ()
    if not run.fixed_different(row):
        blockers += (NOT_FIXED,)
    surrogates = run.surrogates(row)
    attacker = representative(surrogates)
    eps = run.nearest(kind) if eps is None else eps
    cells = run.cells(attacker=attacker.id, kind=kind, eps=eps) if attacker and eps is not None else []
    if not cells:
        return Attacked(run, None, None, blockers + (f"no {row} {kind} cell",))
    by_id = {s.id: s for s in run.record.surrogates}
    unlearned = [
        s
        for s in [attacker, *(by_id[m] for m in attacker.member_ids)]
        if s.test_auc and s.test_auc.low < s.test_auc_floor
    ]
    if unlearned:
        blockers += (f"{row}: {len(unlearned)} surrogate(s) did not learn",)
    adversarial, control = run.scores(cells[0])
    cell = cells[0]
    arm = Arm(
        f"{row} {ATTACK_NAMES[kind]} ε {eps:.3g}",
        interval(cell.adversarial_specific_drop),
        row,
        eps,
        run.name,
        whitebox_auc=cell.surrogate_auc_whitebox,
        attacker_clean_auc=cell.surrogate_auc_clean.point if cell.surrogate_auc_clean else None,
        epsilon_star=run.epsilon_star(attacker.id, kind),
    )
    return Attacked(run, adversarial, control, blockers, arm, eps)


def row_difference(row_a: str, row_b: str) -> tuple[str, str]:
    """What tells two rows apart, e.g. (`IN`, `R`) for `same-imagenet-d1` and `same-random-d1`."""
    a, b = row_a.split("-", 2), row_b.split("-", 2)
    a[1], b[1] = INIT_NAMES.get(a[1], a[1]), INIT_NAMES.get(b[1], b[1])
    differ = [i for i in range(3) if a[i] != b[i]]
    return " ".join(a[i] for i in differ), " ".join(b[i] for i in differ)


def _relative(label: str, a: Attacked, b: Attacked, extra: tuple[str, ...] = ()) -> Comparison:
    """a's relative AUC minus b's, on the same images (a and b may be different targets)."""
    blockers = tuple(dict.fromkeys(a.blockers + b.blockers + extra))
    if blockers:
        return Comparison(label, None, blockers)
    same_images(a.run, b.run)
    y, groups = a.run.clean.y, a.run.bootstrap_groups
    d = relative_difference(
        y, groups, Scored(a.run.clean.scores, a.adversarial), Scored(b.run.clean.scores, b.adversarial)
    )
    return Comparison(label, d, arms=(a.arm, b.arm), eps=(a.eps, b.eps))


def _per_arch(
    c: ModalityRuns, experiment: str | tuple[str, ...], build: Callable[[str], list[Comparison]]
) -> list[Comparison]:
    """`build` per target architecture present in `experiment` (or in any of several)."""
    names = (experiment,) if isinstance(experiment, str) else experiment
    archs = list(dict.fromkeys(a for e in names for a in c.archs(e)))
    if not archs:
        return [Comparison(names[0], None, ("runs absent",))]
    return [comparison for arch in archs for comparison in build(arch)]


def _rows(
    experiments: tuple[str, ...], init: str, row_a: str, row_b: str
) -> Callable[[ModalityRuns], list[Comparison]]:
    """One target per architecture, two rows of surrogates: relative AUC under row_a minus under row_b, on the
    first of `experiments` whose run holds both rows under the fixed `different` rule (else the first's run)."""
    short_a, short_b = row_difference(row_a, row_b)

    def build(c: ModalityRuns) -> list[Comparison]:
        def one(arch: str) -> list[Comparison]:
            runs = [r for r in (c.run(e, arch, init) for e in experiments) if r is not None]
            fixed = [r for r in runs if r.fixed_different(row_a) and r.fixed_different(row_b)]
            run = (fixed or runs or [None])[0]
            return [
                _relative(
                    f"{arch_name(arch)} {INIT_NAMES[init]}, {ATTACK_NAMES[kind]}: {short_a} − {short_b}",
                    attacked(run, row_a, kind),
                    attacked(run, row_b, kind),
                )
                for kind in PAPER_ATTACKS
            ]

        return _per_arch(c, experiments, one)

    return build


def _pretraining_pairs(c: ModalityRuns) -> list[Comparison]:
    """Finding 1: IN target under IN surrogates minus R target under R surrogates, if IN raises clean AUC."""

    def one(arch: str) -> list[Comparison]:
        run_in, run_r = c.run("pretraining", arch, "imagenet"), c.run("pretraining", arch, "random")
        condition: tuple[str, ...] = ()
        if run_in is not None and run_r is not None:
            same_images(run_in, run_r)
            gain = auc_difference(run_in.clean.y, run_in.bootstrap_groups, run_in.clean.scores, run_r.clean.scores)
            condition = premise(gain(PREMISE_CONFIDENCE), f"{arch_name(arch)} IN − R clean AUC")
        return [
            _relative(
                f"{arch_name(arch)}, {ATTACK_NAMES[kind]}: IN→IN − R→R",
                attacked(run_in, "same-imagenet-d1", kind),
                attacked(run_r, "same-random-d1", kind),
                condition,
            )
            for kind in PAPER_ATTACKS
        ]

    return _per_arch(c, "pretraining", one)


def _mismatched_init(c: ModalityRuns) -> list[Comparison]:
    """Finding 2: matched minus mismatched surrogate initialisation, for IN and for R targets."""
    return _rows(("pretraining",), "imagenet", "same-imagenet-d1", "same-random-d1")(c) + _rows(
        ("pretraining",), "random", "same-random-d1", "same-imagenet-d1"
    )(c)


def _control_noise(c: ModalityRuns) -> list[Comparison]:
    """Finding 6: clean minus control AUC, the ensemble's control noise at the ε nearest 0.02 (no arm: the control
    is the attacker's perturbation shuffled, noise of its size whatever the attacker learned)."""

    def one(arch: str) -> list[Comparison]:
        run, out = c.run("perturbation_degree", arch, "random"), []
        for kind in PAPER_ATTACKS:
            s = attacked(run, "same-random-d1", kind)
            label = f"{arch_name(arch)} R, {ATTACK_NAMES[kind]}: clean − control"
            if s.blockers:
                out.append(Comparison(label, None, s.blockers))
                continue
            clean = s.run.clean
            d = auc_difference(clean.y, s.run.bootstrap_groups, clean.scores, s.control)
            out.append(Comparison(label, d, eps=(s.eps,)))
        return out

    return _per_arch(c, "perturbation_degree", one)


def _falls_with_epsilon(c: ModalityRuns) -> list[Comparison]:
    """Finding 7a: adversarial over control AUC at the sweep's largest ε minus at its smallest (below 0: the
    attack's own effect grows with ε); the arm is the attacker at the largest ε."""

    def one(arch: str) -> list[Comparison]:
        run, out = c.run("perturbation_degree", arch, "random"), []
        for kind in PAPER_ATTACKS:
            grid = run.epsilons(kind) if run else []
            if not grid:
                out.append(Comparison(f"{arch_name(arch)} {ATTACK_NAMES[kind]}", None, ("run absent",)))
                continue
            label = f"{arch_name(arch)} R, {ATTACK_NAMES[kind]}: largest ε − smallest ε"
            hi, lo = (attacked(run, "same-random-d1", kind, e) for e in (grid[-1], grid[0]))
            blockers = tuple(dict.fromkeys(hi.blockers + lo.blockers))
            if blockers:
                out.append(Comparison(label, None, blockers))
                continue
            d = relative_difference(
                run.clean.y,
                run.bootstrap_groups,
                Scored(hi.control, hi.adversarial),
                Scored(lo.control, lo.adversarial),
            )
            out.append(Comparison(label, d, arms=(hi.arm,), eps=(hi.eps, lo.eps)))
        return out

    return _per_arch(c, "perturbation_degree", one)


def _fgsm_vs_pgd(c: ModalityRuns) -> list[Comparison]:
    """Finding 7b: relative AUC under FGSM minus under PGD, the same attacker, ε nearest 0.02."""

    def one(arch: str) -> list[Comparison]:
        run = c.run("perturbation_degree", arch, "random")
        fgsm, pgd = (attacked(run, "same-random-d1", k) for k in PAPER_ATTACKS)
        return [_relative(f"{arch_name(arch)} R: FGSM − PGD", fgsm, pgd)]

    return _per_arch(c, "perturbation_degree", one)


def _small_targets(c: ModalityRuns) -> list[Comparison]:
    """Finding 8: relative AUC minus 1 of random-init targets on d1/10 under random-init surrogates on d2."""

    def one(arch: str) -> list[Comparison]:
        run, out = c.run("small_data", arch, "random"), []
        for row in ("same-random-d2", "different-random-d2"):
            for kind in PAPER_ATTACKS:
                label = f"{arch_name(arch)} R (d1/10), {ATTACK_NAMES[kind]}: {row.split('-')[0]} − 1"
                s = attacked(run, row, kind)
                if s.blockers:
                    out.append(Comparison(label, None, s.blockers))
                    continue
                clean = s.run.clean
                unmoved = Scored(clean.scores, clean.scores)  # relative AUC 1: the difference is relative AUC - 1
                d = relative_difference(clean.y, s.run.bootstrap_groups, Scored(clean.scores, s.adversarial), unmoved)
                out.append(Comparison(label, d, arms=(s.arm,), eps=(s.eps,)))
        return out

    return _per_arch(c, "small_data", one)


@dataclass(frozen=True)
class Finding:
    key: str  # "1" ... "8", with "7a"/"7b" for the two halves of finding 7
    statement: str  # the paper's finding (../shared/paper/TABLES.md)
    claim: Claim
    build: Callable[[ModalityRuns], list[Comparison]]
    experiment: str  # the experiment whose runs it rests on

    def paper_d(self, app: str) -> list[float]:
        """The same d computed from the paper's table for application `app` (point values, no intervals)."""
        return [float(x) for x in paper.PAPER_D[self.key](app)]

    def paper_agrees(self, app: str) -> bool | None:
        """Whether the paper's own numbers for `app` lie on the claimed side (None: its table cannot say)."""
        values = self.paper_d(app)
        if not values:
            return None
        # the paper states its findings as "at most" / "at least", and its tables round to 0.01: ties agree
        bound = self.claim.bound
        return all(round(v - bound, 6) <= 0 if self.claim.side == "below" else round(v - bound, 6) >= 0 for v in values)


_DIRECTION = dict(side="below", bound=0.0)
FINDINGS: tuple[Finding, ...] = (
    Finding(
        "1",
        "Pre-trained pairs transfer more when pre-training helps clean AUC",
        Claim(**_DIRECTION, measure="relative AUC, IN target under IN surrogates minus R target under R surrogates"),
        _pretraining_pairs,
        "pretraining",
    ),
    Finding(
        "2",
        "Mismatched initialisation transfers poorly",
        Claim(**_DIRECTION, measure="relative AUC under surrogates of the target's initialisation minus the other"),
        _mismatched_init,
        "pretraining",
    ),
    Finding(
        "3",
        "A surrogate on disjoint data of equal size transfers less",
        Claim(**_DIRECTION, measure="relative AUC of the R target under R surrogates on d1 minus on d2"),
        _rows(("data_disparity",), "random", "same-random-d1", "same-random-d2"),
        "data_disparity",
    ),
    Finding(
        "4",
        "A smaller surrogate set transfers even less",
        Claim(**_DIRECTION, measure="relative AUC of the R target under R surrogates on d2 minus on d2/2"),
        _rows(("data_disparity",), "random", "same-random-d2", "same-random-d2/2"),
        "data_disparity",
    ),
    Finding(
        "5",
        "Architecture mismatch lowers transfer",
        Claim(**_DIRECTION, measure="relative AUC of the R target under same minus different architecture (d1)"),
        # the pretraining runs hold the same two rows (R surrogates on d1) against the same R targets
        _rows(("data_disparity", "pretraining"), "random", "same-random-d1", "different-random-d1"),
        "data_disparity",
    ),
    Finding(
        "6",
        f"Control noise barely lowers AUC (at most {CONTROL_TOLERANCE_AUC:g} below clean)",
        Claim("below", CONTROL_TOLERANCE_AUC, measure="clean minus control AUC"),
        _control_noise,
        "perturbation_degree",
    ),
    Finding(
        "7a",
        "AUC falls as ε grows",
        Claim(**_DIRECTION, measure="adversarial over control AUC at the largest ε minus at the smallest"),
        _falls_with_epsilon,
        "perturbation_degree",
    ),
    Finding(
        "7b",
        "FGSM transfers at least as well as PGD",
        Claim(**_DIRECTION, measure="relative AUC under FGSM minus under PGD, same attacker"),
        _fgsm_vs_pgd,
        "perturbation_degree",
    ),
    Finding(
        "8",
        f"Random-init targets on small data are nearly immune (at least {IMMUNE_RELATIVE_AUC:.0%} of clean AUC)",
        Claim(
            "above", IMMUNE_RELATIVE_AUC - 1.0, measure="relative AUC minus 1, R targets on d1/10, R surrogates on d2"
        ),
        _small_targets,
        "small_data",
    ),
)
BY_KEY = {f.key: f for f in FINDINGS}


def assess_modality(runs: ModalityRuns) -> dict[str, Assessment]:
    """Each finding judged on one modality's runs."""
    return {f.key: assess(f.build(runs), f.claim) for f in FINDINGS}
