"""The one note that relates the measurements table's latency to the latency.max_ratio
check: written only when the table's p50 ratio, read against the same limit, would give the
other verdict than the A/B test that judged it (otherwise the two agree and nothing needs
saying)."""
from __future__ import annotations

from gate import units
from gate.verdict.check import Check


def latency_agreement(bench, checks: list[Check]) -> str | None:
    """`bench` is the run's BenchResult (`stats` by model: `p50_ms`)."""
    ab = next((c for c in checks if c.name == "latency.max_ratio" and c.ci_low is not None
               and c.outcome in ("pass", "fail", "ci")), None)
    stats = getattr(bench, "stats", {})
    if ab is None or "reference" not in stats or "candidate" not in stats:
        return None
    table = stats["candidate"].p50_ms / stats["reference"].p50_ms
    if (table <= ab.limit) == ab.passed:
        return None
    return (f"The measurements table's p50 ratio {units.ratio(table)} is "
            f"{'within' if table <= ab.limit else 'over'} the latency.max_ratio limit {units.ratio(ab.limit)}, "
            f"but the check {'passed' if ab.passed else 'failed'} on the A/B test's interval "
            f"{units.ratio(ab.ci_low)} to {units.ratio(ab.ci_high)}, which times the fastest invoke of each "
            "interleaved visit and so leaves out interference from other processes.")
