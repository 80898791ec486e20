"""An unqualified fidelity metric (`snr_db`, `cosine`, ...) under thresholds.metrics on a
model with several outputs: judged on every output it fits (gate.measure.qualify), one
check that holds only when every output holds. It shows the output furthest from passing
(the first failing one, else the one with the least room) and lists them all."""
from __future__ import annotations

from typing import Callable

from gate.config.schema import Thresholds
from gate.verdict.evidence import Evidence
from gate.verdict.found import Found


def judge_every_output(key: str, kind: str, unit: str, outputs: list[str], ev: Evidence, limit: float,
                       t: Thresholds, judge_one: Callable[[str, str, str], Callable]) -> Found | str:
    """`judge_one(key, kind, unit)` is the registry's judge for one qualified metric name."""
    spec = (t.metrics or {})[key]
    results: dict[str, Found | str] = {}
    for output in outputs:
        qualified = f"{output}/{key}"
        one = t.model_copy(update={"metrics": {**(t.metrics or {}), qualified: spec}})
        results[output] = judge_one(qualified, kind, unit)(ev, limit, one)
    unjudged = {o: r for o, r in results.items() if isinstance(r, str)}
    if unjudged:
        return "; ".join(f"{o}: {why}" for o, why in unjudged.items())
    direction = ">=" if kind == "min" else "<="          # the row's (gate.verdict.registry.metric_rows)

    def room(found: Found) -> float:
        return found.room(limit, direction)

    def holds(found: Found) -> bool:
        return found.holds(limit, direction)

    found = {o: r for o, r in results.items() if not isinstance(r, str)}
    worst = min(found, key=lambda o: (holds(found[o]), room(found[o])))
    chosen = found[worst]
    each = ", ".join(f"{o} {f.value:.5g}" + ("" if holds(f) else " (fails)") for o, f in found.items())
    return Found(
        f"{key} on every output (worst: {worst})", chosen.value, passed=all(holds(f) for f in found.values()),
        reference=chosen.reference, outcome=chosen.outcome, ci_low=chosen.ci_low, ci_high=chosen.ci_high,
        detail=f"judged on each of the {len(found)} outputs: {each}; {chosen.detail}".rstrip("; "))
