"""One judged threshold: the `Check` the registry produces, the report stores and every
rendering (terminal, report.md, job summary, PR comment, annotations) reads.

It is a pydantic model so that the same type validates report.json when it comes back
from an untrusted artifact; `margin` and `message` are derived from the other fields
(written to report.json, ignored and recomputed when a report is read back).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, computed_field

from gate.units import UNIT_FORMATS, format_margin, format_value  # noqa: F401 - re-exported

# point: a deterministic figure; ci: judged on an interval's bound; pass/fail/inconclusive: an A/B
# test's decision; unchanged: the base is the same model, not measured again; not_judged: a
# configured limit nobody could judge (fails unless thresholds.not_judged: pass); not_applicable:
# a limit that does not apply to this run (the base has no model yet, --no-baseline), passes.
CheckOutcome = Literal["point", "ci", "pass", "fail", "inconclusive", "unchanged", "not_judged", "not_applicable"]
Direction = Literal["<=", ">="]      # the limit kind: a maximum, a minimum
UNJUDGED = ("not_judged", "not_applicable")


class Check(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str            # the threshold's path under `thresholds:` in gate.yml, e.g. "accuracy.max_drop"
    metric: str          # human label
    value: float | None     # None when not judged / not applicable, or a tool's verdict without a figure
    limit: float
    direction: Direction
    unit: str            # "" (a fraction, shown as %), "pts" (accuracy points), "%" (a change), KiB, ms, x, count,
                         # value (a metric's own number), dB: written by gate.units
    passed: bool
    reference: float | None = None
    detail: str = ""
    outcome: CheckOutcome = "point"
    ci_low: float | None = None
    ci_high: float | None = None
    line: int | None = None         # the threshold's line in gate.yml (annotations point there)

    @computed_field
    @property
    def margin(self) -> float | None:
        """How far inside (+) or outside (-) the limit the value is, in the check's unit."""
        if self.value is None:
            return None
        return self.limit - self.value if self.direction == "<=" else self.value - self.limit

    @computed_field
    @property
    def message(self) -> str:
        if self.outcome == "not_judged":
            return (f"{self.name} NOT JUDGED: {self.detail}; counted as "
                    + ("pass (thresholds.not_judged: pass)" if self.passed else "fail"))
        if self.outcome == "not_applicable":
            return f"{self.name} not applicable: {self.detail}"
        status = "passed" if self.passed else "FAILED"
        fmt = lambda v: format_value(self.unit, v)  # noqa: E731
        interval = f", interval {fmt(self.ci_low)} to {fmt(self.ci_high)}" if self.ci_low is not None else ""
        text = (f"{self.name} {status}: {self.metric} {fmt(self.value)}{interval} "
                f"(limit {self.direction} {fmt(self.limit)})")
        if self.outcome == "inconclusive":
            text += ", inconclusive: " + ("counted as pass" if self.passed else "counted as fail")
        if self.passed:
            return text
        if self.margin is None:     # a verdict the tool gave without a figure (an ssh board's delegation)
            return f"{text}: {self.detail}" if self.detail else text
        side = "over" if self.direction == "<=" else "under"
        return f"{text}, {side} the limit by {format_margin(self.unit, self.margin)}"

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


def verdict(checks: list[Check]) -> str:
    return "pass" if all(c.passed for c in checks) else "fail"
