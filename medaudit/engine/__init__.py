"""Running the grid: the plan (cells from the scenario), prepared inputs, the clean reference, the victims
each tier attacks, the ε search, the measurement of one cell, the white-box bound's checks, and the executors
(local, Ray).

Imports: every stage before it (`core` … `attackers`).
"""

from __future__ import annotations

from medaudit.engine.executors import EXECUTORS, Executed, Executor, Progress, execute
from medaudit.engine.inputs import Live, delivered, live, prepare
from medaudit.engine.measure import CellArrays, auc_labels
from medaudit.engine.plan import Plan, RunContext, RunOptions, atlas_ids, make_plan
from medaudit.engine.reference import Reference, compute_reference
from medaudit.engine.refine import RefineOutcome, refine_job_for, refined_arrays

__all__ = [
    "atlas_ids",
    "auc_labels",
    "CellArrays",
    "compute_reference",
    "execute",
    "Executed",
    "Executor",
    "Progress",
    "RefineOutcome",
    "refine_job_for",
    "refined_arrays",
    "EXECUTORS",
    "Live",
    "delivered",
    "live",
    "make_plan",
    "Plan",
    "prepare",
    "Reference",
    "RunContext",
    "RunOptions",
]
