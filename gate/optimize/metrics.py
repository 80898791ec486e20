"""Per-layer weight facts after each stage: sparsity, m:n conformity, unique values.

Measured on Keras kernels (tfmot wrappers unwrapped) and on the converted .tflite's
constant weight tensors, so a stage that silently loses what an earlier one achieved
shows up (tfmot #1056: clusters lost in CQAT; zeros drifting back in PQAT).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

KERNEL_ATTRS = ("kernel", "depthwise_kernel")
WRAPPER_PREFIXES = ("quant_", "prune_low_magnitude_", "cluster_")


@dataclass(frozen=True)
class WeightStats:
    weights: int
    zeros: int
    unique: int             # distinct values in the whole kernel
    unique_per_channel: int  # max distinct values in one output channel
    m_by_n: float | None     # share of n-blocks (input axis) with at most m non-zeros, for 2:4

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weights if self.weights else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "sparsity": round(self.sparsity, 6)}


def stats(kernel: np.ndarray, *, out_axis: int, in_axis: int, m_by_n: tuple[int, int] = (2, 4)) -> WeightStats:
    k = np.asarray(kernel)
    flat_channels = np.moveaxis(k, out_axis, 0).reshape(k.shape[out_axis], -1)
    per_channel = max((len(np.unique(row)) for row in flat_channels), default=0)
    return WeightStats(int(k.size), int((k == 0).sum()), int(len(np.unique(k))), int(per_channel),
                       _m_by_n(k, in_axis, *m_by_n))


def _m_by_n(k: np.ndarray, in_axis: int, m: int, n: int) -> float | None:
    moved = np.moveaxis(k, in_axis, -1)
    if moved.shape[-1] % n:
        return None
    blocks = moved.reshape(-1, n)
    return float(((blocks != 0).sum(axis=1) <= m).mean())


def _unwrap(layer: Any) -> Any:
    while hasattr(layer, "layer"):
        layer = layer.layer
    return layer


def base_name(name: str) -> str:
    for prefix in WRAPPER_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def keras_layer_stats(model: Any) -> dict[str, WeightStats]:
    """Kernel stats per layer of a tf_keras model (wrappers allowed). Keras kernels are
    (..., in, out): out is the last axis, in the one before."""
    out = {}
    for layer in model.layers:
        inner = _unwrap(layer)
        for attr in KERNEL_ATTRS:
            var = getattr(inner, attr, None)
            if var is None:
                continue
            k = var.numpy()
            if k.ndim >= 2:
                out[base_name(layer.name)] = stats(k, out_axis=k.ndim - 1, in_axis=k.ndim - 2)
            break
    return out


def tflite_layer_stats(content: bytes) -> dict[str, WeightStats]:
    """Weight stats of a .tflite's constant Conv/FC kernels, keyed by the Keras layer
    name found in the tensor name ("model/dense/MatMul" -> "dense"). TFLite kernels are
    (out, ..., in): channel axis 0, input axis last."""
    from gate.measure.litert import make_interpreter

    interp = make_interpreter(content, threads=1, where="converted model")
    out: dict[str, WeightStats] = {}
    for d in interp.get_tensor_details():
        name = d["name"].split(";")[0]
        parts = name.split("/")
        if len(parts) < 2 or len(d["shape"]) < 2 or not _is_kernel_op(parts[-1]):
            continue
        try:
            k = interp.get_tensor(d["index"])
        except ValueError:
            continue
        layer = base_name(parts[-2])
        if layer not in out:
            out[layer] = stats(k, out_axis=0, in_axis=k.ndim - 1)
    return out


def _is_kernel_op(op: str) -> bool:
    return op in ("MatMul", "Conv2D", "depthwise", "Conv2D1", "Tensordot") or op.startswith(("MatMul", "Conv2D"))


def model_totals(per_layer: dict[str, WeightStats], focus: set[str] | None = None) -> dict:
    """Totals over all kernels; unique values per channel are taken over the `focus`
    layers (the clustered ones) when given, since unclustered layers have thousands."""
    weights = sum(s.weights for s in per_layer.values())
    zeros = sum(s.zeros for s in per_layer.values())
    pool = [s for n, s in per_layer.items() if not focus or n in focus]
    return {"kernel_weights": weights, "kernel_zeros": zeros, "nonzero": weights - zeros,
            "sparsity": round(zeros / weights, 6) if weights else 0.0,
            "max_unique_per_channel": max((s.unique_per_channel for s in pool), default=0),
            "unique_over": sorted(focus) if focus else "all layers"}
