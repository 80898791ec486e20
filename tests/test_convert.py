"""Every post-training mode on the tiny model: valid TFLite, right tensor types, and
accuracy within a stated tolerance of the Keras model."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import keras_accuracy_of, tflite_accuracy, train_samples

from gate.config.schema import ConvertSpec, Quantization
from gate.errors import ModelError
from gate.measure.convert import MODES, reference_spec, to_tflite
from gate.measure.litert import make_interpreter

# (quantization, io) -> (input dtype, weight tensor dtypes that must appear)
CASES = {
    ("none", "float32"): (np.float32, {np.float32}),
    ("dynamic", "float32"): (np.float32, {np.int8}),
    ("float16", "float32"): (np.float32, {np.float16}),
    ("int8", "float32"): (np.float32, {np.int8}),
    ("int8", "int8"): (np.int8, {np.int8}),
    ("int8", "uint8"): (np.uint8, {np.int8}),
    ("int16x8", "float32"): (np.float32, {np.int16, np.int8}),
}
TOLERANCE = 0.03  # accuracy points (fraction) vs Keras on 200 digits examples


def test_every_mode_is_registered():
    assert set(MODES) == set(Quantization)
    assert {q for q, _ in CASES} == {q.value for q in Quantization}


@pytest.fixture(scope="module")
def keras_accuracy(tiny, tiny_model):
    return keras_accuracy_of(tiny_model.keras, tiny)


@pytest.mark.parametrize("quantization,io", list(CASES))
def test_mode_converts_and_keeps_accuracy(tiny, tiny_model, keras_accuracy, quantization, io):
    samples = train_samples(tiny, 50)
    converted = to_tflite(tiny_model.keras, ConvertSpec(quantization=quantization, io=io), samples)
    interp = make_interpreter(converted.content, threads=1)
    in_dtype, weight_dtypes = CASES[(quantization, io)]
    assert interp.get_input_details()[0]["dtype"] == in_dtype
    assert interp.get_output_details()[0]["dtype"] == in_dtype
    dtypes = {d["dtype"] for d in interp.get_tensor_details()}
    assert weight_dtypes <= dtypes, f"{quantization}: expected {weight_dtypes} among {dtypes}"
    if quantization in ("int8", "int16x8"):
        assert converted.calibration_samples == 50
    acc = tflite_accuracy(converted.content, tiny)
    assert abs(acc - keras_accuracy) <= TOLERANCE, (quantization, io, acc, keras_accuracy)


def test_quantized_modes_are_smaller_than_float(tiny_model, tiny):
    samples = train_samples(tiny, 20)
    ref = len(to_tflite(tiny_model.keras, reference_spec()).content)
    dyn = len(to_tflite(tiny_model.keras, ConvertSpec(quantization="dynamic")).content)
    f16 = len(to_tflite(tiny_model.keras, ConvertSpec(quantization="float16")).content)
    int8 = len(to_tflite(tiny_model.keras, ConvertSpec(quantization="int8"), samples).content)
    assert dyn < f16 < ref and int8 < f16


def test_int8_without_samples_is_a_clear_error(tiny_model):
    with pytest.raises(ModelError, match="representative samples from data.train"):
        to_tflite(tiny_model.keras, ConvertSpec(quantization="int8"), None)
