"""Scoring and integer io: known answers on constructed outputs."""
from __future__ import annotations

import numpy as np
import pytest

from gate.measure.evaluate import evaluate_tflite, score
from gate.measure.litert import dequantize_output, quantize_input


def test_top_k_on_known_outputs():
    out = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.4, 0.4, 0.2]])
    y = np.array([1, 1, 0, 1])
    r = score(out, y, [1, 2], 0.0)
    # top-1: [1,0,2,0(tie->lower id)] vs y -> only the first is right
    assert r.predictions == (1, 0, 2, 0)
    assert r.accuracy[1] == pytest.approx(0.25)
    assert r.accuracy[2] == pytest.approx(0.75)


def test_single_sigmoid_output_is_binary():
    r = score(np.array([[0.9], [0.2], [0.6]]), np.array([1, 0, 0]), [1], 0.0)
    assert r.predictions == (1, 0, 1) and r.accuracy[1] == pytest.approx(2 / 3)


def test_k_larger_than_classes_is_capped():
    assert score(np.eye(3), np.array([2, 2, 2]), [5], 0.0).accuracy[5] == 1.0


@pytest.mark.parametrize("dtype,scale,zero", [(np.int8, 1 / 255, -128), (np.uint8, 1 / 255, 0)])
def test_quantize_roundtrip(dtype, scale, zero):
    detail = {"dtype": dtype, "quantization": (scale, zero)}
    x = np.linspace(0, 1, 11, dtype=np.float32)
    q = quantize_input(x, detail)
    assert q.dtype == dtype
    back = dequantize_output(q, detail)
    assert np.abs(back - x).max() <= scale / 2 + 1e-6
    # Out of range values saturate instead of wrapping.
    assert quantize_input(np.array([5.0]), detail)[0] == np.iinfo(dtype).max


def test_tflite_batched_equals_one_by_one(tiny, tiny_model):
    from gate.measure.convert import reference_spec, to_tflite

    content = to_tflite(tiny_model.keras, reference_spec()).content
    x, y = tiny.x_eval[:37], tiny.y_eval[:37]
    batched = evaluate_tflite(content, x, y, [1], 16)   # 16+16+5: the last batch is resized
    single = evaluate_tflite(content, x, y, [1], 1)
    assert batched.predictions == single.predictions and batched.examples == 37
