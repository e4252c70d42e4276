"""Execute: run a plan's jobs, phase by phase, wherever the executor puts them.

Every job function is `run_job(ctx, job)`: pure given its job and the run context, it stores its
result in the shared cache, so a later phase reads what an earlier one made. An executor only decides where
the calls run: `local` loops in this process, `ray` submits the same calls as Ray tasks (a GPU each when the
device is cuda), so both give the same records bit for bit. Executors are built from the run options and
enrolled in `EXECUTORS`; the engine treats them all alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from medaudit.core import AuditInputError
from medaudit.engine.budget_search import SearchOutcome, search_job
from medaudit.engine.measure import CellOutcome, SurrogateOutcome, bound_job, cell_job, train_job
from medaudit.engine.plan import PHASES, Plan, RunContext, RunOptions
from medaudit.engine.refine import refine_job

Progress = Callable[[str, int, int], None]  # (phase, done, total)
JOBS = {  # job kind -> function
    "surrogate": train_job,
    "search": search_job,
    "cell": cell_job,
    "bound": bound_job,
    "refine": refine_job,
}


def run_job(ctx: RunContext, job):
    """Run one job of any kind (what every executor calls)."""
    return JOBS[job.kind](ctx, job)


@dataclass(frozen=True)
class Executed:
    """Every job's outcome, by phase, and how long each phase took (wall clock)."""

    surrogates: tuple[SurrogateOutcome, ...]
    searches: tuple[SearchOutcome, ...]
    cells: tuple[CellOutcome, ...]  # transfer tier
    bounds: tuple[CellOutcome, ...]  # query and white-box tiers
    seconds: dict[str, float]  # phase -> seconds


class Executor(Protocol):
    """Runs a plan's jobs; built from the run options."""

    name: str

    @classmethod
    def from_options(cls, options: RunOptions) -> "Executor": ...

    def map(self, ctx: RunContext, jobs: Sequence, phase: str, progress: Progress | None) -> list: ...


def execute(executor: Executor, plan: Plan, progress: Progress | None = None) -> Executed:
    """Run every phase of the plan in order with `executor`."""
    outcomes, seconds = {}, {}
    for phase in PHASES:
        started = time.perf_counter()
        outcomes[phase] = tuple(executor.map(plan.context, plan.phase(phase), phase, progress))
        seconds[phase] = time.perf_counter() - started
    return Executed(outcomes["surrogates"], outcomes["search"], outcomes["cells"], outcomes["bounds"], seconds)


class LocalExecutor:
    """Runs every job in this process, in plan order."""

    name = "local"

    @classmethod
    def from_options(cls, options: RunOptions) -> "LocalExecutor":
        return cls()

    def map(self, ctx: RunContext, jobs: Sequence, phase: str, progress: Progress | None) -> list:
        out = []
        for i, job in enumerate(jobs):
            out.append(run_job(ctx, job))
            if progress:
                progress(phase, i + 1, len(jobs))
        return out


class RayExecutor:
    """Runs each phase's jobs as Ray tasks on a cluster (`--address`, or a local one).

    A CPU task asks for `torch_threads` CPUs, a cuda task for one GPU and one CPU; the cache folder
    must be one every worker sees (a shared file system)."""

    name = "ray"

    def __init__(self, address: str | None):
        self.address = address

    @classmethod
    def from_options(cls, options: RunOptions) -> "RayExecutor":
        return cls(options.address)

    def _start(self, ray, ctx: RunContext) -> None:
        if ray.is_initialized():
            return
        try:
            ray.init(
                address=self.address,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                **({} if self.address else {"num_cpus": max(ctx.torch_threads, 1)}),
            )
        except ConnectionError as exc:
            raise AuditInputError(
                f"--address {self.address}: no Ray cluster there ({exc}); start one with "
                "`ray start --head` or drop --address for a local one"
            ) from None

    def map(self, ctx: RunContext, jobs: Sequence, phase: str, progress: Progress | None) -> list:
        import ray

        self._start(ray, ctx)
        gpu = ctx.device == "cuda"  # a GPU task needs one CPU to feed it; a CPU task gets the threads it will use
        options = {"num_cpus": 1 if gpu else ctx.torch_threads, "num_gpus": 1 if gpu else 0, "max_retries": 0}
        remote = ray.remote(run_job).options(**options)
        refs = [remote.remote(ctx, job) for job in jobs]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list = [None] * len(refs)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            results[index[done[0]]] = ray.get(done[0])
            if progress:
                progress(phase, len(refs) - len(pending), len(refs))
        return results


EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor, "ray": RayExecutor}  # tests enrol every entry
