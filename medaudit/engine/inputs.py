"""The run's live inputs, rebuilt from a `RunContext` in whichever process runs a job: the checked target and the
audit data, with the test images in the form the target is handed (8-bit round trip when the scenario says so).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from medaudit.core import AuditInputError, deliver_uint8
from medaudit.data import AuditData, load_data
from medaudit.engine.plan import RunContext
from medaudit.scenario import Scenario
from medaudit.target import Target, load_target

CHECK_IMAGES = 32  # audit images the load check runs the target on (twice: it must answer the same)


@dataclass(frozen=True)
class Live:
    """The live objects a job works with: immutable, so one copy per process serves every job."""

    target: Target  # loaded and checked
    data: AuditData  # test images already in the delivered form (uint8 round trip when asked)
    test_sha256: str  # of the test images and labels as attacked


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
    return target.checked(data.test.x[:CHECK_IMAGES]), data


@functools.lru_cache(maxsize=1)
def live(ctx: RunContext) -> Live:
    """Target and data for `ctx`, loaded once per process (the driver's and each worker's)."""
    target, data = prepare(ctx.scenario, ctx.target_path, ctx.data_source)
    if ctx.scenario.delivery == "uint8":
        data = replace(data, test=replace(data.test, x=deliver_uint8(data.test.x)))
    h = hashlib.sha256(data.test.x.tobytes())
    h.update(np.ascontiguousarray(data.test.y).tobytes())
    return Live(target=target, data=data, test_sha256=h.hexdigest())


def delivered(ctx: RunContext) -> tuple[RunContext, Live]:
    """`ctx` with the scenario's `delivery: source` resolved by the data's bit depth, and its live inputs."""
    lv = live(ctx)
    scenario = ctx.scenario.delivered_at(lv.data.bit_depth)
    if scenario is ctx.scenario:
        return ctx, lv
    ctx = replace(ctx, scenario=scenario)
    return ctx, live(ctx)
