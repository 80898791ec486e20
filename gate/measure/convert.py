"""Keras model -> TFLite bytes, one registered function per post-training mode; LiteRT
Quantizer recipes on top of the float conversion.

A tf_keras model is converted from one traced function (gate.measure.traced: no
SavedModel round trip); recurrent and Keras 3 models go through
`tf.lite.TFLiteConverter.from_keras_model` (on TF 2.21 it exports a Keras 3 model to a
SavedModel itself); `supported_ops` is always
set to builtins so that no Flex (TensorFlow) op sneaks in. The representative dataset
yields one dict per example keyed by input name, each input in its own dtype: the
converter matches dicts to the signature by name, lists by tensor position (wrong for
several inputs), and a cast to float32 breaks int32 token inputs.
"""
from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from gate.config.schema import ConvertSpec, IoType, Quantization, Quantizer
from gate.errors import GateError, ModelError

Samples = Mapping[str, np.ndarray]
RNN_CLASSES = ("GRU", "LSTM", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")


@dataclass(frozen=True)
class Converted:
    """A .tflite the gate made (or the committed one, `seconds` None) and how."""

    content: bytes
    quantization: str           # the TFLite converter's mode, a LiteRT Quantizer recipe, or "as committed"
    io: str                     # the file's own input/output types (io_of): "float32", "int8", "int8 in, float32 out"
    seconds: float | None
    calibration_samples: int
    quantizer: str = "tflite"   # tflite | litert | none (the committed file)
    precision: str | None = None   # what the file holds (gate.measure.tflite_inspect): float, int8, ...
    fallback: dict | None = None   # what convert.keep_float kept float, and the ablation (gate.measure.fallback)
    debug_model: bytes | None = None   # TFLite converter int8: the same quantization with NumericVerify ops
                                       # (QuantizationDebugger's debug model, for gate.measure.layers)

    def info(self) -> dict:
        """How it was made, as report.json's artifact records it."""
        out = {"quantization": self.quantization, "io": self.io, "quantizer": self.quantizer}
        if self.precision:
            out["precision"] = self.precision
        if self.seconds is not None:
            out.update(convert_seconds=round(self.seconds, 3), calibration_samples=self.calibration_samples)
        return out


Configure = Callable[[Any, Any, ConvertSpec, "Samples | None", "Mapping[str, str]"], None]


def _representative(samples: Samples | None, mode: str, dtypes: Mapping[str, str]) -> Callable:
    """One dict per example, keyed by input name, each array in its input's dtype (uint8
    pixels for a float input become float32; int32 token ids stay int32)."""
    if not _count(samples):
        raise ModelError(f"quantization: {mode} needs representative samples from data.train", field="data.train")
    arrays = {name: a.astype(dtypes.get(name) or (np.float32 if np.issubdtype(a.dtype, np.floating) else a.dtype))
              for name, a in samples.items()}
    n = len(next(iter(arrays.values())))

    def gen():
        for i in range(n):
            yield {name: a[i:i + 1] for name, a in arrays.items()}
    return gen


def _builtins(conv, tf) -> None:
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]


def _none(conv, tf, spec, samples, dtypes):
    _builtins(conv, tf)


def _dynamic(conv, tf, spec, samples, dtypes):
    _builtins(conv, tf)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]


def _float16(conv, tf, spec, samples, dtypes):
    _builtins(conv, tf)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]


_IO = {IoType.float32: "float32", IoType.int8: "int8", IoType.uint8: "uint8"}


def _int8(conv, tf, spec, samples, dtypes):
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(samples, "int8", dtypes)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io = getattr(tf, _IO[spec.io])
    conv.inference_input_type = io
    conv.inference_output_type = io


def _int16x8(conv, tf, spec, samples, dtypes):
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(samples, "int16x8", dtypes)
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]


MODES: dict[Quantization, Configure] = {
    Quantization.none: _none,
    Quantization.dynamic: _dynamic,
    Quantization.float16: _float16,
    Quantization.int8: _int8,
    Quantization.int16x8: _int16x8,
}


def to_tflite(model: Any, spec: ConvertSpec, samples: Samples | None = None) -> Converted:
    """Convert a tf_keras or Keras 3 model with the policy's post-training mode, or to float
    then through the LiteRT Quantizer recipe (quantizer: litert)."""
    if spec.quantizer is Quantizer.litert:
        return _with_litert(model, spec, samples)
    from gate.measure.tfenv import tf as load_tf

    tf = load_tf()
    start = time.perf_counter()
    fallback: dict = {}
    content = _convert(model, tf, spec, samples, fallback)
    calibrated = min(_count(samples), spec.representative_samples) if (
        _count(samples) and spec.quantization in (Quantization.int8, Quantization.int16x8)) else 0
    kept = fallback.get("fallback")
    return Converted(content, spec.quantization.value, io_of(content), time.perf_counter() - start, calibrated,
                     "tflite", _precision(content), kept.to_dict() if kept is not None else None,
                     fallback.get("debug_model"))


def layer_names(model: Any) -> list[str]:
    """The Keras layer names of a model, nested models' layers included (the converter
    names tensors after them)."""
    names = []
    for layer in getattr(model, "layers", []) or []:
        names.append(layer.name)
        inner = getattr(layer, "layer", None)          # tfmot wrappers
        if inner is not None and getattr(inner, "name", None):
            names.append(inner.name)
        if getattr(layer, "layers", None):
            names += layer_names(layer)
    return names


def _traceable(model: Any) -> bool:
    """A tf_keras model without recurrent layers: converted from one traced function
    (gate.measure.traced), not through a SavedModel."""
    from gate.measure.tfenv import keras

    k = keras()
    return isinstance(model, k.Model) and not _has_rnn(model, k)


def _has_rnn(model: Any, k: Any) -> bool:
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)        # tfmot wrappers, Bidirectional
        if type(layer).__name__ in RNN_CLASSES or type(inner).__name__ in RNN_CLASSES:
            return True
        if isinstance(inner, k.Model) and _has_rnn(inner, k):
            return True
    return False


def _count(samples: Samples | np.ndarray | None) -> int:
    if samples is None:
        return 0
    return len(samples) if isinstance(samples, np.ndarray) else len(next(iter(samples.values()), ()))


def _convert(model: Any, tf: Any, spec: ConvertSpec, samples: Samples | None, fallback: dict | None = None) -> bytes:
    from gate.measure.model import keras_io

    dtypes = {name: str(getattr(t.dtype, "name", t.dtype)) for name, t in keras_io(model)[0]}
    if isinstance(samples, np.ndarray):     # a single-input model's examples
        samples = {next(iter(dtypes)): samples}
    traced = _traceable(model)
    if traced:
        from gate.measure.traced import add_signature, by_position, traced_converter

        conv, in_names, out_names = traced_converter(model, tf)
    else:
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
    MODES[spec.quantization](conv, tf, spec, samples, dtypes)
    if traced and getattr(conv, "representative_dataset", None) is not None:
        conv.representative_dataset = by_position(conv.representative_dataset, in_names)
    mode = "float32" if spec.quantization is Quantization.none else spec.quantization.value
    if spec.sparsity:  # store pruned kernels sparse, for XNNPACK sparse inference
        conv.optimizations = [*conv.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    if spec.quantization is Quantization.int8 and fallback is not None:
        # calibrate once, then quantize (keeping keep_float's ops float) and keep the debug model
        from gate.measure.fallback import install_tflite_hook

        limited = {k: a[:spec.representative_samples] for k, a in samples.items()} if samples else None
        install_tflite_hook(conv, spec.keep_float, layer_names(model), limited, fallback)
    try:
        with contextlib.redirect_stdout(io.StringIO()):   # Keras 3's export prints "Saved artifact at ..."
            content = bytes(conv.convert())
        if spec.keep_float is not None and fallback is not None and "fallback" not in fallback:
            raise ModelError("convert.keep_float was not applied: the converter did not run its post-training "
                             "quantization step", field="policy.convert.keep_float",
                             hint="keep_float needs post-training int8 (no qat step)")
        return add_signature(content, in_names, out_names) if traced else content
    except GateError:
        raise
    except Exception as exc:  # noqa: BLE001 - the converter's refusals are about the model
        raise conversion_error(model, mode, exc) from None


def conversion_error(model: Any, mode: str, exc: BaseException) -> ModelError:
    text = str(exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    first = next((ln for ln in lines if "error:" in ln), lines[0] if lines else "")
    rnns = [f"'{layer.name}' ({type(layer).__name__})" for layer in getattr(model, "layers", [])
            if type(layer).__name__ in RNN_CLASSES]
    if rnns and ("TensorList" in text or "element_shape" in text or "static" in text):
        return ModelError(f"TFLite conversion ({mode}) failed on the recurrent layer(s) {', '.join(rnns)}: "
                          f"{first[:300]}", field="policy.convert",
                          hint="Keras 3 GRU/LSTM layers lower to a TensorList while loop that the TFLite converter "
                               "refuses with a dynamic batch size: build the model with a fixed batch "
                               "(keras.Input(shape=..., batch_size=1)) and save it again. float32, dynamic-range "
                               "and float16 then convert; int8 calibration of Keras 3 RNNs crashes TensorFlow "
                               "2.21 (use dynamic-range, or convert: {quantizer: litert, recipe: "
                               "dynamic_wi8_afp32}).")
    quantized = [f"'{layer.name}'" for layer in getattr(model, "layers", [])
                 if "Quantized" in type(getattr(layer, "dtype_policy", None)).__name__
                 or "Int4" in type(getattr(layer, "dtype_policy", None)).__name__]
    if quantized:
        return ModelError(f"TFLite conversion ({mode}) failed: layer(s) {', '.join(quantized[:5])} were quantized "
                          "by Keras 3 (model.quantize()), which the TFLite converter of TF 2.21 cannot convert: "
                          f"{first[:200]}", field="model",
                          hint="commit the float model and let the policy quantize it (int8, dynamic-range, or "
                               "convert: {quantizer: litert, recipe: dynamic_wi4_afp32} for int4 weights)")
    return ModelError(f"TFLite conversion ({mode}) failed: {type(exc).__name__}: {first[:500]}",
                      field="policy.convert")


def _with_litert(model: Any, spec: ConvertSpec, samples: Samples | None) -> Converted:
    start = time.perf_counter()
    base = to_tflite(model, ConvertSpec(quantization=Quantization.none))
    return quantize_committed(base.content, spec, samples, start=start, keras_layers=layer_names(model))


def recipe_for(spec: ConvertSpec) -> str | None:
    """The LiteRT Quantizer recipe a policy's convert section asks for (None: keep float)."""
    from gate.measure.litert_quant import FOR_MODE

    if spec.recipe is not None:
        return spec.recipe.value
    if spec.quantization is Quantization.none:
        return None
    if spec.quantization.value not in FOR_MODE:
        raise ModelError(f"LiteRT Quantizer has no recipe for quantization: {spec.quantization.value}",
                         field="policy.convert.quantization",
                         hint="float16 needs the TFLite converter (a Keras model); use dynamic, int8 or int16x8, "
                              "or a recipe")
    return FOR_MODE[spec.quantization.value]


def quantize_committed(content: bytes, spec: ConvertSpec, samples: Samples | None, *,
                       start: float | None = None, keras_layers: list[str] | tuple = (),
                       notes: list[str] | None = None) -> Converted:
    """A float .tflite through the LiteRT Quantizer recipe the spec maps to, with
    convert.keep_float applied (gate.measure.fallback). `notes` gets what was rewritten
    first: gate.measure.litert_quant.prepare."""
    from gate.measure.litert_quant import STATIC, quantize

    start = time.perf_counter() if start is None else start
    recipe = recipe_for(spec)
    if recipe is None:
        return Converted(content, Quantization.none.value, io_of(content), time.perf_counter() - start, 0, "litert",
                         _precision(content))
    limited = None
    if samples and recipe in STATIC:
        limited = {k: a[:spec.representative_samples] for k, a in samples.items()}
    kept = None
    if spec.keep_float is not None:
        from gate.measure.fallback import litert_fallback

        examples = limited or ({k: a[:spec.representative_samples] for k, a in samples.items()} if samples else None)
        out, kept = litert_fallback(content, recipe, spec.keep_float, examples, keras_layers, notes=notes)
    else:
        out = quantize(content, recipe, limited, notes=notes)
    calibrated = len(next(iter(limited.values()))) if limited else 0
    return Converted(out, recipe, io_of(out), time.perf_counter() - start, calibrated, "litert", _precision(out),
                     kept.to_dict() if kept is not None else None)


def io_of(content: bytes) -> str:
    """The io types the file itself has ("float32", "int8", "int8 in, float32 out"): what
    ships, not what the policy asked for (static_wi8_ai8 makes int8 io)."""
    from gate.measure.tflite_tensors import io_label

    return io_label(content)


def _precision(content: bytes) -> str:
    from gate.measure.tflite_inspect import tflite_kind

    return tflite_kind(content).kind


def reference_spec() -> ConvertSpec:
    """The unoptimized model as float32 TFLite: the reference for compression and latency."""
    return ConvertSpec(quantization=Quantization.none)
