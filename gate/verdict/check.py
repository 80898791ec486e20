"""One judged threshold: the `Check` the registry produces, the report stores and every
rendering (terminal, report.md, job summary, PR comment, annotations) reads.

It is a pydantic model so that the same type validates report.json when it comes back
from an untrusted artifact; `margin` and `message` are derived from the other fields
(written to report.json, ignored and recomputed when a report is read back).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, computed_field

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
    value: float | None     # None only when not judged / not applicable
    limit: float
    direction: Direction
    unit: str            # "" (a fraction, shown as %), "pts" (accuracy points), "%" (a change), KiB, ms, x, count,
                         # value (a metric's own number), dB
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
        side = "over" if self.direction == "<=" else "under"
        return f"{text}, {side} the limit by {fmt(abs(self.margin))}"

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


UNIT_FORMATS = {
    "pts": lambda v: f"{100 * v:.2f} pts",     # accuracy points: 0.01 -> 1.00 pts
    "%": lambda v: f"{100 * v:+.2f} %",        # a change: 0.02 -> +2.00 %
    "": lambda v: f"{100 * v:.2f} %",          # a fraction: 0.98 -> 98.00 %
    "x": lambda v: f"{v:.2f}x",
    "ms": lambda v: f"{v:.4g} ms",
    "count": lambda v: f"{v:,.0f}",
    "value": lambda v: f"{v:.5g}",              # a metric's own value (mae 45.2, cosine 0.9998)
    "dB": lambda v: f"{v:.2f} dB",
}


def format_value(unit: str, value: float | None) -> str:
    """A check's figure in its unit (UNIT_FORMATS; other units: `12.3 KiB`)."""
    if value is None:
        return "–"
    fmt = UNIT_FORMATS.get(unit)
    return fmt(float(value)) if fmt else f"{float(value):,.1f} {unit}"


def verdict(checks: list[Check]) -> str:
    return "pass" if all(c.passed for c in checks) else "fail"
