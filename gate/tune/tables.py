"""Per-layer tables (a step's `per_layer`) from the measured sensitivity curves
(gate.run.worker.sensitivity -> gate.optimize.sensitivity): for an overall strength, the least
sensitive layers are compressed most.

For a tolerance t, each layer takes the strongest measured setting whose drop is <= t, or
WEAKEST when none is (left alone; 64 clusters); t is the smallest tolerance whose table
reaches the overall strength, weighted by the layers' weights (clusters: by bits,
log2(k)). Greedy and cheap; the trial then fine-tunes and measures the real drop.
"""
from __future__ import annotations

from math import log2

from gate.tune.space import (
    CLUSTER_STRENGTHS,
    CLUSTER_STRONGER,
    PRUNE_STRENGTHS,
    PRUNE_STRONGER,
    STRUCTURED_STRENGTHS,
    STRUCTURED_STRONGER,
)

WEAKEST = {"prune": 0.0, "cluster": 64, "structured_prune": 0.0}
TARGETS = {"prune": PRUNE_STRONGER + PRUNE_STRENGTHS, "cluster": CLUSTER_STRONGER + CLUSTER_STRENGTHS,
           "structured_prune": STRUCTURED_STRONGER + STRUCTURED_STRENGTHS}


def curves_of(sensitivity: dict, kind: str) -> list[tuple[str, int, dict[float, float]]]:
    rows = (sensitivity.get("layers") or {}).get(kind) or []
    return [(r["layer"], int(r["weights"]), {float(k): float(v) for k, v in r["drops"].items()}) for r in rows]


def allocate(curves: list[tuple[str, int, dict[float, float]]], target: float, kind: str) -> dict[str, float]:
    if not curves:
        return {}
    measured = sorted({s for _n, _w, d in curves for s in d}, reverse=kind != "cluster")
    options = measured + [WEAKEST[kind]]
    total = sum(w for _n, w, _d in curves) or 1

    def drop(d: dict, s: float) -> float:
        return 0.0 if s == WEAKEST[kind] else d.get(s, float("inf"))

    def table(tol: float) -> dict[str, float]:
        return {n: next((s for s in options if drop(d, s) <= tol), WEAKEST[kind]) for n, _w, d in curves}

    def strength(t: dict[str, float]) -> float:
        if kind == "cluster":       # fewer bits is stronger
            return -sum(log2(t[n]) * w for n, w, _d in curves) / total
        return sum(t[n] * w for n, w, _d in curves) / total

    goal = -log2(target) if kind == "cluster" else target
    # a layer that scored better compressed (a negative drop) counts as no drop
    tolerances = sorted({max(v, 0.0) for _n, _w, d in curves for v in d.values()} | {0.0})
    for tol in tolerances:
        t = table(tol)
        if strength(t) >= goal - 1e-9:
            return t
    return table(tolerances[-1])


def tables_for(sensitivity: dict, kind: str, targets: tuple | None = None) -> dict[float, dict]:
    """strength -> per-layer table for each of the family's strengths (or `targets`)."""
    curves = curves_of(sensitivity, kind)
    weights = {n: w for n, w, _d in curves}
    out = {}
    for target in targets or TARGETS[kind]:
        t = allocate(curves, target, kind)
        if kind == "cluster":      # tfmot needs more weights than clusters
            t = {n: int(min(v, 2 ** int(log2(max(weights[n] - 1, 2))))) for n, v in t.items()}
        out[target] = {n: (int(v) if kind == "cluster" else round(float(v), 3)) for n, v in t.items()}
    return out
