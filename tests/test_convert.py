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


@pytest.mark.parametrize("quantization", ["none", "int8"])
def test_traced_conversion_is_the_saved_model_conversion(quantization):
    """gate.measure.traced (one traced function, a SignatureDef added) gives what
    from_keras_model's SavedModel route gives on a two-input, two-output tf_keras model with
    an int32 input: the same signature names, the same outputs (float32: to 1e-5; int8:
    the same quantized graph from by-position calibration, to one quantization step)."""
    from gate.measure.litert import run_signature
    from gate.measure.tfenv import keras, tf

    k = keras()
    k.utils.set_random_seed(0)
    image, ids = k.Input((6, 6, 1), name="image"), k.Input((5,), dtype="int32", name="ids")
    a = k.layers.Flatten()(k.layers.Conv2D(4, 3, activation="relu")(image))
    b = k.layers.Flatten()(k.layers.Embedding(20, 3)(ids))
    joined = k.layers.Concatenate()([a, b])
    model = k.Model([image, ids], [k.layers.Dense(3, activation="softmax", name="label")(joined),
                                   k.layers.Dense(1, name="score")(joined)])
    rng = np.random.default_rng(0)
    x = {"image": rng.uniform(size=(32, 6, 6, 1)).astype(np.float32), "ids": rng.integers(0, 20, (32, 5)).astype(np.int32)}
    spec = ConvertSpec.model_validate({"quantization": quantization})
    ours = to_tflite(model, spec, x).content
    conv = tf().lite.TFLiteConverter.from_keras_model(model)
    MODES[spec.quantization](conv, tf(), spec, x, {"image": "float32", "ids": "int32"})
    theirs = bytes(conv.convert())
    sig = make_interpreter(ours, threads=1).get_signature_list()
    assert sig == make_interpreter(theirs, threads=1).get_signature_list()
    assert sorted(sig["serving_default"]["inputs"]) == ["ids", "image"]
    assert sorted(sig["serving_default"]["outputs"]) == ["label", "score"]
    got, want = run_signature(ours, x, batch=8), run_signature(theirs, x, batch=8)
    for name in ("label", "score"):
        tol = 1e-5 if quantization == "none" else 0.05 * (np.abs(want[name]).max() + 1e-6)
        np.testing.assert_allclose(got[name], want[name], atol=tol)
