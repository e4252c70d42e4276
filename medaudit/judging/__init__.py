"""From measurements to judgements: curves and breaking ε per criterion, attacker fitness, evidence
(seed spread, paired comparisons, examples, anomalies), the gate rules and the verdict.

Imports: every stage before it (`core` … `engine`).
"""

from __future__ import annotations

from medaudit.judging.breaking import Pair, Point, breaking_epsilons, next_round
from medaudit.judging.evidence import anomalies, comparisons, examples, seed_spread
from medaudit.judging.finalize import CellScores, choose_epsilons, order_check, surrogate_results
from medaudit.judging.harm import sample_sizes, worst_case
from medaudit.judging.verdict import judge

__all__ = [
    "anomalies",
    "breaking_epsilons",
    "CellScores",
    "choose_epsilons",
    "comparisons",
    "examples",
    "order_check",
    "judge",
    "next_round",
    "Pair",
    "Point",
    "seed_spread",
    "sample_sizes",
    "surrogate_results",
    "worst_case",
]
