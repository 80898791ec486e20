"""Keras model -> TFLite bytes, one registered function per post-training mode."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from gate.config.schema import ConvertSpec, IoType, Quantization
from gate.errors import ModelError


@dataclass(frozen=True)
class Converted:
    """A .tflite the gate made (or the committed one, `seconds` None) and how."""

    content: bytes
    quantization: str
    io: str
    seconds: float | None
    calibration_samples: int

    def info(self) -> dict:
        """How it was made, as report.json's artifact records it."""
        out = {"quantization": self.quantization, "io": self.io}
        if self.seconds is not None:
            out.update(convert_seconds=round(self.seconds, 3), calibration_samples=self.calibration_samples)
        return out


Configure = Callable[[Any, Any, ConvertSpec, "np.ndarray | None"], None]


def _representative(samples: np.ndarray | None, mode: str) -> Callable:
    if samples is None or len(samples) == 0:
        raise ModelError(f"quantization: {mode} needs representative samples from data.train", field="data.train")
    samples = samples.astype(np.float32)

    def gen():
        for i in range(len(samples)):
            yield [samples[i:i + 1]]
    return gen


def _none(conv, tf, spec, samples):
    pass


def _dynamic(conv, tf, spec, samples):
    conv.optimizations = [tf.lite.Optimize.DEFAULT]


def _float16(conv, tf, spec, samples):
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]


_IO = {IoType.float32: "float32", IoType.int8: "int8", IoType.uint8: "uint8"}


def _int8(conv, tf, spec, samples):
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(samples, "int8")
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io = getattr(tf, _IO[spec.io])
    conv.inference_input_type = io
    conv.inference_output_type = io


def _int16x8(conv, tf, spec, samples):
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(samples, "int16x8")
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]


MODES: dict[Quantization, Configure] = {
    Quantization.none: _none,
    Quantization.dynamic: _dynamic,
    Quantization.float16: _float16,
    Quantization.int8: _int8,
    Quantization.int16x8: _int16x8,
}


def to_tflite(model: Any, spec: ConvertSpec, samples: np.ndarray | None = None) -> Converted:
    """Convert a tf_keras model with the policy's post-training mode."""
    from gate.measure.tfenv import tf as load_tf

    tf = load_tf()
    start = time.perf_counter()
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    MODES[spec.quantization](conv, tf, spec, samples)
    if spec.sparsity:  # store pruned kernels sparse, for XNNPACK sparse inference
        conv.optimizations = [*conv.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    try:
        content = conv.convert()
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - the converter's refusals are about the model
        first = str(exc).strip().splitlines()
        raise ModelError(f"TFLite conversion ({spec.quantization.value}) failed: "
                         f"{type(exc).__name__}: {first[0][:500] if first else ''}", field="policy.convert") from None
    calibrated = min(len(samples), spec.representative_samples) if (
        samples is not None and spec.quantization in (Quantization.int8, Quantization.int16x8)) else 0
    return Converted(bytes(content), spec.quantization.value, spec.io.value, time.perf_counter() - start, calibrated)


def reference_spec() -> ConvertSpec:
    """The unoptimized model as float32 TFLite: the reference for compression and latency."""
    return ConvertSpec(quantization=Quantization.none)
