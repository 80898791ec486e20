"""What a threshold's judge measured (gate.verdict.registry): the figure, its reference and
the statistics' outcome. The registry row adds the threshold's name, unit and limit kind."""
from __future__ import annotations

from dataclasses import dataclass

from gate.verdict.check import CheckOutcome, Direction

ROUNDING_SLACK = 1e-12   # a change computed to exactly its limit passes despite float rounding


@dataclass(frozen=True)
class Found:
    metric: str                      # human label
    value: float | None              # None only with `passed` set: the tool gave a verdict, no figure
    passed: bool | None = None       # None: the value against the limit, in the row's direction
    reference: float | None = None
    detail: str = ""
    outcome: CheckOutcome = "point"
    ci_low: float | None = None
    ci_high: float | None = None

    def room(self, limit: float, direction: Direction) -> float:
        """How far inside the limit the value is (negative: outside)."""
        return self.value - limit if direction == ">=" else limit - self.value

    def holds(self, limit: float, direction: Direction) -> bool:
        if self.passed is None and self.value is None:
            raise ValueError(f"{self.metric}: a Found without a value needs `passed`")
        return self.passed if self.passed is not None else self.room(limit, direction) >= -ROUNDING_SLACK
