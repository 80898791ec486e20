"""Per-layer sensitivity: how much the model loses when ONE layer alone is compressed.

Cheap on purpose (no fine-tuning): for each layer a step could touch, its kernel is
compressed in place -- magnitude-pruned to sparsity s, clustered to k values (1-D k-means),
or its lowest-L1 output units zeroed (structured ratio r) --, the Keras model scores a
bounded eval sample, and the kernel is restored. The drop against the untouched model is
accuracy points for a classifier (the primary output), otherwise the relative RMS change of
the outputs. `gate tune` turns the curves into per-layer tables (`per_layer`,
gate.tune.tables).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

KIND_GRID = {"prune": (0.5, 0.75, 0.9), "cluster": (32, 16, 8), "structured_prune": (0.25, 0.5, 0.75)}
KERNELS = ("kernel", "depthwise_kernel")


@dataclass(frozen=True)
class LayerCurve:
    """One layer's measured drop at each strength of one kind (strength -> drop)."""

    layer: str
    weights: int
    drops: dict[float, float]


def _kernel(layer: Any):
    for attr in KERNELS:
        w = getattr(layer, attr, None)
        if w is not None:
            return w
    return None


def prune_kernel(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Magnitude pruning of one tensor: the smallest |w| set to zero."""
    k = int(round(w.size * sparsity))
    if k <= 0:
        return w
    flat = np.abs(w).ravel()
    cut = np.partition(flat, k - 1)[k - 1]
    return np.where(np.abs(w) <= cut, 0.0, w).astype(w.dtype)


def cluster_kernel(w: np.ndarray, clusters: int, iterations: int = 8) -> np.ndarray:
    """1-D k-means of one tensor's values (quantile-initialised, a few Lloyd iterations)."""
    flat = w.ravel().astype(np.float64)
    if flat.size <= clusters:
        return w
    centroids = np.quantile(flat, (np.arange(clusters) + 0.5) / clusters)
    for _ in range(iterations):
        edges = (centroids[1:] + centroids[:-1]) / 2
        idx = np.searchsorted(edges, flat)
        sums = np.bincount(idx, weights=flat, minlength=clusters)
        counts = np.bincount(idx, minlength=clusters)
        centroids = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        centroids.sort()
    edges = (centroids[1:] + centroids[:-1]) / 2
    return centroids[np.searchsorted(edges, flat)].reshape(w.shape).astype(w.dtype)


def unit_mask(w: np.ndarray, ratio: float) -> np.ndarray:
    """The output units (last axis) kept by L1 norm when `ratio` of them are removed."""
    n = w.shape[-1]
    norms = np.abs(w.reshape(-1, n)).sum(axis=0)
    keep = np.ones(n, bool)
    drop = int(round(n * ratio))
    if 0 < drop < n:
        keep[np.argsort(norms, kind="stable")[:drop]] = False
    return keep


class Scorer:
    """Scores a model on a fixed sample: accuracy of the primary classifier output, or
    (no classifier) the negated relative RMS change of all outputs vs the untouched model."""

    def __init__(self, model: Any, x: Any, labels: np.ndarray | None, primary: int = 0):
        self.model, self.x, self.labels, self.primary = model, x, labels, primary
        self.reference = self._outputs()
        self.base = self.score()

    def _outputs(self) -> list[np.ndarray]:
        out = self.model(self.x, training=False)
        outs = out if isinstance(out, (list, tuple)) else list(out.values()) if isinstance(out, dict) else [out]
        return [np.asarray(o) for o in outs]

    def score(self) -> float:
        outs = self._outputs()
        if self.labels is not None:
            return float(np.mean(np.argmax(outs[self.primary], axis=-1) == self.labels))
        err = sum(float(np.mean((o - r) ** 2)) for o, r in zip(outs, self.reference))
        scale = sum(float(np.mean(r ** 2)) for r in self.reference) or 1.0
        return -float(np.sqrt(err / scale))

    def drop(self) -> float:
        return round(self.base - self.score(), 5)


def measure(model: Any, scorer: Scorer, candidates: dict[str, list[str]],
            grid: dict[str, tuple] = KIND_GRID, progress: Callable[[str], None] = lambda _: None
            ) -> dict[str, list[LayerCurve]]:
    """`candidates`: kind -> the layers a step of that kind would touch. Each layer's kernel
    is changed, scored and restored (the model is left as it was)."""
    out: dict[str, list[LayerCurve]] = {}
    for kind, names in candidates.items():
        curves = []
        for i, name in enumerate(names):
            layer = model.get_layer(name)
            var = _kernel(layer)
            if var is None:
                continue
            original = var.numpy()
            bias = getattr(layer, "bias", None)
            bias0 = bias.numpy() if bias is not None else None
            drops = {}
            try:
                for strength in grid[kind]:
                    if kind == "prune":
                        var.assign(prune_kernel(original, strength))
                    elif kind == "cluster":
                        var.assign(cluster_kernel(original, int(strength)))
                    else:
                        keep = unit_mask(original, strength)
                        var.assign(original * keep)
                        if bias is not None:
                            bias.assign(bias0 * keep)
                    drops[strength] = scorer.drop()
            finally:
                var.assign(original)
                if bias is not None:
                    bias.assign(bias0)
            curves.append(LayerCurve(name, int(original.size), drops))
            progress(f"sensitivity {kind}: {i + 1}/{len(names)} {name} "
                     + " ".join(f"{s:g}:{d:+.3f}" for s, d in drops.items()))
        out[kind] = curves
    return out
