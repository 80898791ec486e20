"""Run the original model (Keras) and TFLite models on the eval split and score them.

Outputs are collected by name (Keras output names; a .tflite's signature outputs are
mapped back to them), then scored by gate.measure.scores: the configured metrics, the
fidelity metrics against the original model's outputs, and the legacy top-k accuracy of
the model's classifier output (what `thresholds.accuracy` judges). Per-example values
and predictions are kept for paired statistics.
"""
from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gate.errors import ModelError
from gate.measure.data import Split
from gate.measure.litert import run_signature
from gate.measure.model import TensorSpec, keras_io, natural_key
from gate.measure.scores import MetricValue, Planned, compute_all, plan, top1, top_k_correct
from gate.measure.tasks import OutputTask


@dataclass(frozen=True)
class EvalResult:
    examples: int
    accuracy: dict[int, float]                # k -> top-k accuracy of the classifier output (empty: none)
    predictions: tuple[int, ...] | None       # its top-1 class per example (None: no classifier output)
    seconds: float
    metrics: Mapping[str, MetricValue] = field(default_factory=dict)
    outputs: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)   # raw outputs, by name
    primary: str | None = None                # the output `accuracy` is about

    def top(self, k: int = 1) -> float:
        return self.accuracy[k]

    def values(self) -> dict[str, float | None]:
        return {name: m.value for name, m in self.metrics.items()}

    def to_dict(self, *, with_predictions: bool = True) -> dict:
        out: dict = {"examples": self.examples, "accuracy": {f"top{k}": v for k, v in self.accuracy.items()},
                     "seconds": round(self.seconds, 4)}
        if self.metrics:
            out["metrics"] = self.values()
            missing = {name: m.why for name, m in self.metrics.items() if m.value is None}
            if missing:
                out["unavailable"] = missing
        if with_predictions and self.predictions is not None:
            out["predictions"] = list(self.predictions)
        return out


@dataclass(frozen=True)
class Scoring:
    """What is scored: the eval split (bound to the model), the metrics, the top-k list."""

    split: Split
    planned: tuple[Planned, ...]
    ks: tuple[int, ...]

    @property
    def tasks(self) -> Mapping[str, OutputTask]:
        return self.split.tasks

    @classmethod
    def of(cls, split: Split, configured: list[str] | None, extra: list[str], ks: list[int]) -> "Scoring":
        return cls(split, tuple(plan(configured, extra, split.tasks, set(split.y), ks)), tuple(sorted(set(ks))))

    def primary(self) -> str | None:
        """The one classifier (or binary) output with targets: legacy `accuracy` judges it."""
        labelled = [o for o, t in self.tasks.items() if t.is_classes and o in self.split.y]
        return labelled[0] if len(labelled) == 1 else None

    def score(self, outputs: Mapping[str, np.ndarray], seconds: float,
              original: Mapping[str, np.ndarray] | None = None) -> EvalResult:
        metrics = compute_all(list(self.planned), outputs, self.split.y, self.tasks, original)
        primary = self.primary()
        accuracy: dict[int, float] = {}
        predictions = None
        if primary is not None:
            y, out = self.split.y[primary], outputs[primary]
            accuracy = {k: float(top_k_correct(out, y, k).mean()) for k in self.ks}
            predictions = tuple(int(p) for p in top1(out))
        return EvalResult(self.split.n, accuracy, predictions, seconds, metrics, dict(outputs), primary)


def keras_feed(model: Any, split: Split, rows: slice = slice(None), *, lazy: bool = False
               ) -> np.ndarray | dict[str, np.ndarray] | list[np.ndarray]:
    """The split's inputs for model.predict/fit: each in the model input's own dtype (float
    inputs as float32; int32 token ids stay integers); a dict by name for several inputs,
    or a list in input order when the model's inputs were renamed (a flattened copy).
    `rows`: only those examples (a batch); `lazy`: the arrays as they are (memory-mapped,
    converted per batch by the consumer, gate.optimize.finetune)."""
    inputs = keras_io(model)[0]
    arrays = list(split.x.values())
    names = [n for n, _ in inputs]
    by_name = set(names) <= set(split.x)
    feed = []
    for i, (name, tensor) in enumerate(inputs):
        a = split.x[name] if by_name else arrays[i]
        if lazy:
            feed.append(a)
            continue
        a = np.asarray(a[rows])
        dtype = str(getattr(getattr(tensor, "dtype", None), "name", getattr(tensor, "dtype", "float32")))
        feed.append(a.astype(np.float32) if dtype.startswith(("float", "bfloat")) else a.astype(dtype))
    if len(feed) == 1:
        return feed[0]
    return dict(zip(names, feed)) if by_name else feed


def keras_outputs(model: Any, prediction: Any, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """predict()'s result by output name; `names` renames them in Keras output order (a
    tfmot-wrapped or bridged copy of the model, whose output layers are renamed)."""
    own = [n for n, _ in keras_io(model)[1]]
    if isinstance(prediction, Mapping):
        keys = [k for k in own if k in prediction] or list(prediction)
        values = [prediction[k] for k in keys]
    elif isinstance(prediction, (list, tuple)):
        keys, values = own, list(prediction)
    else:
        keys, values = own[:1], [prediction]
    if names is not None and len(names) == len(values):
        keys = names
    return {str(k): np.asarray(v, dtype=np.float32) for k, v in zip(keys, values)}


def run_keras(model: Any, split: Split, batch_size: int, names: list[str] | None = None) -> dict[str, np.ndarray]:
    """The model's outputs on every example, by name: batch by batch (predict_on_batch), so
    only one batch of inputs is in memory as float32 at a time."""
    parts: dict[str, list[np.ndarray]] = {}
    for lo in range(0, split.n, batch_size):
        feed = keras_feed(model, split, slice(lo, lo + batch_size))
        for name, value in keras_outputs(model, model.predict_on_batch(feed), names).items():
            parts.setdefault(name, []).append(value)
    return {name: np.concatenate(values) for name, values in parts.items()}


_OUTPUT_I = re.compile(r"^output_(\d+)$")
_WRAPPER = re.compile(r"^(quant_|prune_low_magnitude_|cluster_)+")


def map_outputs(tflite_outputs: Mapping[str, np.ndarray], names: list[str], *, where: str,
                layers: list[str | None] | None = None) -> dict[str, np.ndarray]:
    """A .tflite's signature outputs -> the model's output names: the same names (tf_keras
    conversions, Keras 3 dict outputs), `output_i` in Keras output order (Keras 3 list and
    single outputs), the only output, or (a converted tf_keras copy, possibly tfmot-wrapped)
    the names of the layers that produce them."""
    sig = list(tflite_outputs)
    if set(names) <= set(sig):
        return {n: tflite_outputs[n] for n in names}
    unwrapped = {_WRAPPER.sub("", s): s for s in sig}
    if layers and all(layers) and len(set(layers)) == len(names) and set(layers) <= set(unwrapped):
        return {n: tflite_outputs[unwrapped[lay]] for n, lay in zip(names, layers)}
    if len(sig) == len(names) and all(_OUTPUT_I.match(s) for s in sig):
        ordered = sorted(sig, key=natural_key)
        return {n: tflite_outputs[s] for n, s in zip(names, ordered)}
    if len(sig) == 1 and len(names) == 1:
        return {names[0]: tflite_outputs[sig[0]]}
    if len(unwrapped) == len(sig) and set(names) <= set(unwrapped):   # a tfmot-wrapped model's renamed layers
        return {n: tflite_outputs[unwrapped[n]] for n in names}
    raise ModelError(f"the .tflite's outputs {sig} cannot be matched to the model's outputs {names}", file=where)


def run_tflite(content: bytes, split: Split, batch_size: int, names: list[str], *, threads: int = 1,
               where: str = "candidate model", layers: list[str | None] | None = None) -> dict[str, np.ndarray]:
    outs = run_signature(content, split.x, batch=batch_size, threads=threads, where=where)
    return map_outputs(outs, names, where=where, layers=layers)


def evaluate_keras(model: Any, scoring: Scoring, batch_size: int) -> EvalResult:
    start = time.perf_counter()
    outputs = run_keras(model, scoring.split, batch_size, list(scoring.tasks))
    return scoring.score(outputs, time.perf_counter() - start)


def evaluate_tflite(content: bytes, scoring: Scoring, batch_size: int, names: list[str], *,
                    original: Mapping[str, np.ndarray] | None = None, threads: int = 1,
                    where: str = "candidate model", layers: list[str | None] | None = None) -> EvalResult:
    start = time.perf_counter()
    outputs = run_tflite(content, scoring.split, batch_size, names, threads=threads, where=where, layers=layers)
    return scoring.score(outputs, time.perf_counter() - start, original)


def output_specs(specs: tuple[TensorSpec, ...]) -> list[str]:
    return [s.name for s in specs]
