"""LiteRT Quantizer on a float .tflite, and telling float from quantized files by their
flatbuffer alone (gate.measure.tflite_inspect)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import train_samples

from gate.config.schema import ConvertSpec
from gate.errors import ModelError
from gate.measure.convert import quantize_committed, reference_spec, to_tflite
from gate.measure.litert_quant import FOR_MODE, quantize
from gate.measure.tflite_inspect import output_activations, tflite_kind


@pytest.fixture(scope="module")
def float_tflite(tiny_model) -> bytes:
    return to_tflite(tiny_model.keras, reference_spec()).content


@pytest.mark.parametrize("quantization,io,kind", [
    ("none", "float32", "float"), ("dynamic", "float32", "dynamic_range"), ("float16", "float32", "float16"),
    ("int8", "float32", "int8"), ("int8", "int8", "int8"), ("int16x8", "float32", "int16x8")])
def test_kind_of_every_converter_mode(tiny, tiny_model, quantization, io, kind):
    content = to_tflite(tiny_model.keras, ConvertSpec(quantization=quantization, io=io), train_samples(tiny, 20)).content
    assert tflite_kind(content).kind == kind


@pytest.mark.parametrize("recipe,kind", [
    ("dynamic_wi8_afp32", "dynamic_range"), ("dynamic_wi4_afp32", "dynamic_range"),
    ("weight_only_wi4_afp32", "dynamic_range"), ("dynamic_legacy_wi8_afp32", "dynamic_range"),
    ("static_wi8_ai8", "int8"), ("static_wi8_ai16", "int16x8")])
def test_recipes(float_tflite, tiny, recipe, kind):
    samples = train_samples(tiny, 20) if recipe.startswith("static") else None
    out = quantize(float_tflite, recipe, samples)
    assert tflite_kind(out).kind == kind and len(out) < len(float_tflite)


def test_static_recipes_need_samples_and_quantized_models_are_refused(float_tflite, tiny):
    with pytest.raises(ModelError, match="needs data.train"):
        quantize(float_tflite, "static_wi8_ai8")
    int8 = quantize(float_tflite, "static_wi8_ai8", train_samples(tiny, 10))
    with pytest.raises(ModelError, match="already quantized \\(int8\\)"):
        quantize(int8, "dynamic_wi8_afp32")


def test_policy_modes_map_to_recipes(float_tflite, tiny):
    assert FOR_MODE == {"dynamic": "dynamic_legacy_wi8_afp32", "int8": "static_wi8_ai8", "int16x8": "static_wi8_ai16"}
    out = quantize_committed(float_tflite, ConvertSpec(quantization="int8", representative_samples=7),
                             train_samples(tiny, 50))
    assert out.quantization == "static_wi8_ai8" and out.calibration_samples == 7 and out.precision == "int8"
    with pytest.raises(ModelError, match="no recipe for quantization: float16"):
        quantize_committed(float_tflite, ConvertSpec(quantization="float16"), None)


def test_calibration_keeps_int32_token_inputs(tmp_path):
    from gate.measure.litert import run_signature
    from gate.measure.tfenv import keras3

    k3 = keras3()
    k3.utils.set_random_seed(0)
    tokens = k3.Input((12,), dtype="int32", name="tokens")
    model = k3.Model(tokens, k3.layers.Dense(3, activation="softmax")(
        k3.layers.GlobalAveragePooling1D()(k3.layers.Embedding(50, 8)(tokens))))
    content = to_tflite(model, reference_spec()).content
    ids = np.random.default_rng(0).integers(0, 50, (40, 12)).astype(np.int32)
    out = quantize(content, "static_wi8_ai8", {"tokens": ids})
    assert tflite_kind(out).kind == "int8"
    result = run_signature(out, {"tokens": ids}, batch=8)
    assert next(iter(result.values())).shape == (40, 3)


def test_output_activations_tell_softmax_from_linear(float_tflite, tiny_model):
    assert set(output_activations(float_tflite).values()) == {"softmax"}
    from gate.measure.tfenv import keras

    k = keras()
    reg = k.Sequential([k.Input((3,)), k.layers.Dense(1)])
    assert set(output_activations(to_tflite(reg, reference_spec()).content).values()) == {"linear"}
