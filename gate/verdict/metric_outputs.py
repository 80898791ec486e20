"""An unqualified fidelity metric (`snr_db`, `cosine`, ...) under thresholds.metrics on a
model with several outputs: judged on every output it fits (gate.measure.qualify), one
check that holds only when every output holds. It shows the output furthest from passing
(the first failing one, else the one with the least room) and lists them all."""
from __future__ import annotations

from typing import Callable

from gate.config.schema import Thresholds
from gate.verdict.check import Check
from gate.verdict.evidence import Evidence


def judge_every_output(key: str, kind: str, outputs: list[str], ev: Evidence, limit: float, t: Thresholds,
                       judge_one: Callable[[str, str], Callable]) -> Check | str:
    """`judge_one(key, kind)` is the registry's judge for one qualified metric name."""
    spec = (t.metrics or {})[key]
    results: dict[str, Check | str] = {}
    for output in outputs:
        qualified = f"{output}/{key}"
        one = t.model_copy(update={"metrics": {**(t.metrics or {}), qualified: spec}})
        results[output] = judge_one(qualified, kind)(ev, limit, one)
    unjudged = {o: r for o, r in results.items() if isinstance(r, str)}
    if unjudged:
        return "; ".join(f"{o}: {why}" for o, why in unjudged.items())
    checks = {o: r for o, r in results.items() if isinstance(r, Check)}
    worst = min(checks, key=lambda o: (checks[o].passed, checks[o].margin if checks[o].margin is not None else 0))
    chosen = checks[worst]
    each = ", ".join(f"{o} {c.value:.5g}" + ("" if c.passed else " (fails)") for o, c in checks.items())
    return chosen.model_copy(update={
        "name": f"metrics.{key}.{kind}", "passed": all(c.passed for c in checks.values()),
        "metric": f"{key} on every output (worst: {worst})",
        "detail": f"judged on each of the {len(checks)} outputs: {each}; {chosen.detail}".rstrip("; ")})
