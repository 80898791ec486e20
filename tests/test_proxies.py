"""Deterministic proxies against hand-computed figures on the tiny CNN."""
from __future__ import annotations

import numpy as np
import pytest

from gate.errors import ModelError
from gate.measure.proxies import proxies, static_proxies

CONV_MACS = 6 * 6 * 8 * 9      # Conv2D 3x3x1 -> 8 filters, 'valid' on 8x8: 6x6 outputs
DENSE_MACS = 288 * 10          # Dense 288 -> 10


@pytest.fixture(scope="module")
def converted(tiny_model, tiny):
    from gate.config.schema import ConvertSpec
    from gate.measure.convert import reference_spec, to_tflite

    model = tiny_model.keras
    int8 = to_tflite(model, ConvertSpec(quantization="int8"), tiny.x_train[:50]).content
    return model, to_tflite(model, reference_spec()).content, int8


def test_macs_and_parameters_of_the_float_model(converted):
    model, content, _ = converted
    p = proxies(content, measure_memory=False)
    assert p.macs_by_op == {"CONV_2D": CONV_MACS, "FULLY_CONNECTED": DENSE_MACS}
    assert p.macs == CONV_MACS + DENSE_MACS == 5472
    assert p.parameters == model.count_params() == 8 * 9 + 8 + 2880 + 10
    assert p.nonzero_parameters <= p.parameters and p.unique_values <= p.parameters
    assert p.rss_delta_bytes is None and p.memory_method == "not measured"


def test_int8_keeps_the_parameter_count_and_shows_few_unique_values(converted):
    model, _, int8 = converted
    p = static_proxies(int8)
    assert p["parameters"] == model.count_params()
    assert p["macs"] == CONV_MACS + DENSE_MACS
    assert p["max_unique_per_tensor"] <= 256


def test_zeroed_weights_are_not_counted_as_nonzero(tiny_model):
    from gate.measure.convert import reference_spec, to_tflite
    from gate.measure.tfenv import keras

    clone = keras().models.clone_model(tiny_model.keras)
    clone.set_weights(tiny_model.keras.get_weights())
    kernel, bias = clone.get_layer("classifier").get_weights()
    kernel[:144] = 0.0                                     # half of the 288 input rows
    clone.get_layer("classifier").set_weights([kernel, bias])
    p = static_proxies(to_tflite(clone, reference_spec()).content)
    full = static_proxies(to_tflite(tiny_model.keras, reference_spec()).content)
    assert p["parameters"] == full["parameters"]
    assert full["nonzero_parameters"] - p["nonzero_parameters"] == pytest.approx(1440, abs=5)


def test_batch_matmul_macs():
    from gate.measure.convert import reference_spec, to_tflite
    from gate.measure.tfenv import keras, tf

    k = keras()
    x = k.layers.Input(shape=(4, 6))
    y = k.layers.Lambda(lambda t: tf().matmul(t, t, transpose_b=True))(x)   # [4, 6] x [6, 4]
    p = static_proxies(to_tflite(k.Model(x, y), reference_spec()).content)
    assert p["macs_by_op"] == {"BATCH_MATMUL": 4 * 4 * 6}


def test_memory_is_measured_in_a_fresh_process(converted):
    p = proxies(converted[1])
    assert p.rss_delta_bytes is not None and p.rss_delta_bytes > 0
    assert p.peak_delta_bytes >= p.rss_delta_bytes
    assert set(p.to_dict()) >= {"parameters", "nonzero_parameters", "unique_values",
                                "macs", "rss_delta_bytes", "sparsity"}


def test_not_a_flatbuffer():
    with pytest.raises(ModelError):
        proxies(b"definitely not a model" * 10)
    with pytest.raises(ModelError):
        static_proxies(np.zeros(64, np.uint8).tobytes())
