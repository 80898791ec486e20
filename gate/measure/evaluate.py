"""Accuracy of the original Keras model and of TFLite models on the eval split.

TFLite runs batched (the input tensor is resized); integer io is quantized and
dequantized with the tensor's own scale and zero point. Per-example predictions are
kept for paired statistics.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from gate.errors import ModelError
from gate.measure.litert import dequantize_output, make_interpreter, quantize_input


@dataclass(frozen=True)
class EvalResult:
    examples: int
    accuracy: dict[int, float]      # k -> top-k accuracy
    predictions: tuple[int, ...]    # top-1 class per example
    seconds: float

    def top(self, k: int = 1) -> float:
        return self.accuracy[k]

    def to_dict(self, *, with_predictions: bool = True) -> dict:
        out = {"examples": self.examples, "accuracy": {f"top{k}": v for k, v in self.accuracy.items()},
               "seconds": round(self.seconds, 4)}
        if with_predictions:
            out["predictions"] = list(self.predictions)
        return out


def score(outputs: np.ndarray, y: np.ndarray, ks: list[int], seconds: float) -> EvalResult:
    outputs = np.asarray(outputs, dtype=np.float32).reshape(len(y), -1)
    if outputs.shape[1] == 1:  # a single sigmoid unit: class 1 when p > 0.5
        outputs = np.concatenate([1.0 - outputs, outputs], axis=1)
    # Stable ranking: ties go to the lower class id, as argmax does.
    order = np.argsort(-outputs, axis=1, kind="stable")
    acc = {}
    for k in sorted(set(ks)):
        kk = min(k, outputs.shape[1])
        acc[k] = float((order[:, :kk] == y[:, None]).any(axis=1).mean())
    return EvalResult(len(y), acc, tuple(int(p) for p in order[:, 0]), seconds)


def evaluate_keras(model: Any, x: np.ndarray, y: np.ndarray, ks: list[int], batch_size: int) -> EvalResult:
    start = time.perf_counter()
    out = model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0)
    return score(out, y, ks, time.perf_counter() - start)


def evaluate_tflite(content: bytes, x: np.ndarray, y: np.ndarray, ks: list[int], batch_size: int,
                    *, threads: int = 1, where: str = "candidate model") -> EvalResult:
    start = time.perf_counter()
    interp = make_interpreter(content, threads=threads, where=where)
    try:
        outputs = _run_batched(interp, x, batch_size)
    except (RuntimeError, ValueError):
        # Some graphs have a fixed batch dimension; one example at a time always works.
        try:
            outputs = _run_batched(interp, x, 1)
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"the TFLite model fails on the eval data: {exc}", file=where) from None
    return score(outputs, y, ks, time.perf_counter() - start)


def _run_batched(interp: Any, x: np.ndarray, batch: int) -> np.ndarray:
    index = interp.get_input_details()[0]["index"]
    feature = [int(d) for d in interp.get_input_details()[0]["shape"][1:]]
    outputs, current = [], None
    for i in range(0, len(x), batch):
        chunk = x[i:i + batch]
        if len(chunk) != current:
            interp.resize_tensor_input(index, [len(chunk), *feature], strict=False)
            interp.allocate_tensors()
            current = len(chunk)
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        interp.set_tensor(index, quantize_input(chunk, inp))
        interp.invoke()
        outputs.append(dequantize_output(interp.get_tensor(out["index"]), out))
    return np.concatenate(outputs, axis=0)
