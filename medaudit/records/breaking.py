"""The breaking epsilon's record: epsilon*, its bracket, every epsilon measured and why the bisection stopped."""

from __future__ import annotations

from typing import Literal

from medaudit.attacks import Tier
from medaudit.records.measurements import Record

SearchStop = Literal[
    "holds at every ε measured",  # no measured epsilon breaks the criterion: nothing to narrow
    "bracket within 10%",  # the bracket's ends are within `BRACKET_PRECISION` of its upper end
    "one grey level apart",  # 8-bit delivery: no whole grey level lies between the bracket's ends
    "float floor",  # float delivery: epsilon* is at the smallest epsilon the bisection measures
    "interval wider than the bracket",  # the bootstrap cannot place the crossing more finely than the bracket
    "another attacker breaks first",  # its bracket starts above its tier's epsilon*: it cannot set it
    "round limit",  # the bisection ran its most rounds
]


class MeasuredEpsilon(Record):
    """One epsilon an attacker was measured at, with the criterion's point value there."""

    epsilon_pm1: float
    value: float | None  # None: undefined (one class left)
    holds: bool
    bisection: bool  # measured by the bisection, not on the grid


class BreakingEpsilon(Record):
    """The smallest measured epsilon at which one attacker breaks one criterion (epsilon*), with its bracket, every
    epsilon measured and the bootstrap interval.

    After the grid, the bisection narrows the bracket of every attacker that may set its tier's epsilon*; nothing
    between measured points is interpolated. A resample that never breaks contributes `> largest measured` (the
    interval's high end is then None). `epsilon_pm1` None: no measured epsilon breaks the criterion."""

    criterion_id: str
    attacker_id: str
    attack_id: str
    tier: Tier
    epsilon_pm1: float | None
    holds_at_pm1: float | None  # the largest measured epsilon below epsilon* where it holds; 0: the clean image
    low_pm1: float | None  # None only when no resample breaks
    high_pm1: float | None  # None: some resamples do not break at any measured epsilon
    largest_tried_pm1: float
    measured: tuple[MeasuredEpsilon, ...]  # every epsilon measured, increasing
    search: SearchStop  # why the bisection stopped
    one_grey_level_pm1: float | None  # 8-bit delivery: the smallest change a delivered image carries
    bound_epsilon_pm1: float | None  # where the perceptibility bound binds for this attack
    near_invisible_epsilon_pm1: float | None

    @property
    def at_one_grey_level(self) -> bool:
        """Breaks at the smallest change an 8-bit image can carry: one grey level, and the clean image holds."""
        g = self.one_grey_level_pm1
        return (
            g is not None
            and self.epsilon_pm1 is not None
            and self.holds_at_pm1 == 0
            and self.epsilon_pm1 <= g * 1.000001
        )

    @property
    def bisection_points(self) -> int:
        return sum(m.bisection for m in self.measured)

    @property
    def margin(self) -> float | None:
        """epsilon* / the bound's epsilon: below 1, the criterion breaks inside the perceptibility budget."""
        if self.epsilon_pm1 is None or not self.bound_epsilon_pm1:
            return None
        return self.epsilon_pm1 / self.bound_epsilon_pm1
