"""What each tier's attacker holds, built in the process that runs the job.

- transfer: the attacker's own surrogates (trained or read from the cache);
- whitebox: the target's differentiable module (`medaudit.target.differentiable`), accepted only when it reproduces the
  target's runner on the images it attacks; a model the converter cannot take loses the tier, with the reason;
- query: a function returning the target's class probabilities, every image it sends counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medaudit.attackers import SurrogateRecord, SurrogateSpec, load_surrogate, train_surrogate
from medaudit.attacks import Tier
from medaudit.engine.inputs import live
from medaudit.engine.plan import RunContext
from medaudit.target import (
    TargetQueries,
    WhiteboxUnavailable,
    class_probabilities,
    differentiable_target,
    straight_through_text,
)


def trained(ctx: RunContext, spec: SurrogateSpec) -> SurrogateRecord:
    """Train the surrogate `spec` describes on its split, or read it from the cache."""
    weights_dir = Path(ctx.scenario.weights_dir) if ctx.scenario.weights_dir else None
    lv = live(ctx)
    return train_surrogate(
        spec, lv.data.split(spec.split), Path(ctx.cache_dir) / "surrogate", device=ctx.device, weights_dir=weights_dir
    )


def surrogates(ctx: RunContext, specs: tuple[SurrogateSpec, ...]) -> list[torch.nn.Module]:
    return [load_surrogate(trained(ctx, s), s, ctx.device) for s in specs]


@dataclass(frozen=True)
class Victim:
    """What one tier's attacker attacks, or why that tier cannot run on this target."""

    model: object | None  # the attack's `victim` argument; None: the tier is unavailable
    note: str  # how it was built (white-box: converter and difference to the runner) or why it is unavailable


def victim(ctx: RunContext, tier: Tier, queries: TargetQueries, x: np.ndarray, specs=()) -> Victim:
    """The victim of a `tier` attack on images `x`: the surrogates `specs` (transfer), the target's checked
    differentiable module (whitebox) or its counted class probabilities (query)."""
    if tier == "transfer":
        return Victim(surrogates(ctx, specs), "")
    task = live(ctx).data.task
    if task == "multilabel":
        return Victim(None, f"the {tier} tier attacks binary and multiclass targets; this one is multilabel")
    if tier == "query":
        return Victim(lambda images: class_probabilities(queries.scores(images), task), "scores only, no gradients")
    target = live(ctx).target
    model = differentiable_target(
        target.path, target.card, reference=queries.raw_outputs, check_images_pm1=x, device=ctx.device
    )
    if isinstance(model, WhiteboxUnavailable):
        return Victim(None, model.reason)
    straight = f", {straight_through_text(model.straight_through)}" if model.straight_through else ""
    return Victim(
        (model.module,),
        f"{model.converter}{straight}; largest difference to the target's runner on {model.check_images} audit images "
        f"{model.max_abs_difference:.2g} (tolerance {model.tolerance:.2g})",
    )
