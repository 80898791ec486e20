"""The per-layer table (gate.measure.layers): one row per op of the candidate, the error at
each quantized op's output against the float model, on the digits CNN, a committed .tflite
quantized by LiteRT Quantizer and a keras.applications MobileNetV2; and how report.md and
the terminal show it when a check fails."""
from __future__ import annotations

import copy
import io
import time

import numpy as np
import pytest
from conftest import train_samples
from rich.console import Console

from gate.config.schema import ConvertSpec
from gate.measure.convert import quantize_committed, reference_spec, to_tflite
from gate.measure.layers import coverage, diagnose, keras_layer, worst_by_error
from gate.report.render import render_markdown
from gate.report.terminal import print_report


@pytest.fixture(scope="module")
def float_tflite(tiny_model) -> bytes:
    return to_tflite(tiny_model.keras, reference_spec()).content


def test_int8_rows_cover_every_op_with_an_snr(tiny, tiny_model, float_tflite):
    cand = to_tflite(tiny_model.keras, ConvertSpec(quantization="int8"), train_samples(tiny, 50)).content
    rows = diagnose(cand, float_tflite, {"image": tiny.x_eval}, keras_layers=["conv", "flatten", "classifier"])
    measured, quantized = coverage(rows)
    assert quantized == 4 and measured == quantized       # conv, reshape, fully connected, softmax
    by_layer = {r.layer: r for r in rows if r.layer}
    conv, fc = by_layer["conv"], by_layer["classifier"]
    assert (conv.op, conv.dtype, conv.weight_dtype, conv.bits, conv.parameters) == ("CONV_2D", "INT8", "INT8", 8, 80)
    assert fc.parameters == 6 * 6 * 8 * 10 + 10 and fc.share > 0.4 and fc.unique_values <= 256
    assert sum(r.bytes for r in rows) < len(cand)
    for r in rows:
        if r.quantized and r.op != "QUANTIZE":
            assert 15 < r.snr_db < 80 and 0.05 < r.rmse_per_scale < 5   # int8: about 0.29 per healthy op
    dq = [r for r in rows if r.op == "DEQUANTIZE"]
    assert dq and all("back to float" in r.float_reason for r in dq)


def test_quantization_debugger_column_is_the_ops_own_error(tiny, tiny_model, float_tflite):
    """The TFLite converter's int8 candidate carries its NumericVerify debug model; the
    debugger's per-op rmse/scale is near the rounding error (0.29); the reshape after the
    float conv carries that conv output's quantization, nothing more."""
    spec = ConvertSpec.model_validate({"quantization": "int8", "keep_float": {"layers": ["^conv$"]}})
    cand = to_tflite(tiny_model.keras, spec, train_samples(tiny, 50))
    assert cand.debug_model is not None
    rows = diagnose(cand.content, float_tflite, {"image": tiny.x_eval}, debug_model=cand.debug_model,
                    kept=cand.fallback["kept"])
    by_op = {r.op: r for r in rows if r.quantized}
    assert 0.1 < by_op["FULLY_CONNECTED"].debugger_rmse_per_scale < 1.0
    assert 0.1 < by_op["RESHAPE"].debugger_rmse_per_scale < 0.5
    conv = next(r for r in rows if r.op == "CONV_2D")
    assert conv.dtype == "FLOAT32" and conv.debugger_rmse_per_scale is None and "keep_float" in conv.float_reason


def test_a_float_model_against_itself_has_no_error(tiny, float_tflite):
    rows = diagnose(float_tflite, float_tflite, {"image": tiny.x_eval})
    assert all(r.snr_db == 120.0 and r.rmse_per_scale is None and r.float_reason is None for r in rows)


def test_litert_candidate_of_a_committed_tflite(tiny, float_tflite):
    spec = ConvertSpec.model_validate({"quantizer": "litert", "quantization": "int8"})
    cand = quantize_committed(float_tflite, spec, train_samples(tiny, 50)).content
    rows = diagnose(cand, float_tflite, {"image": tiny.x_eval}, quantizer="litert")
    measured, quantized = coverage(rows)
    assert quantized >= 3 and measured == quantized
    assert worst_by_error(rows, 1)[0].snr_db == min(r.snr_db for r in rows if r.snr_db is not None)


def test_keras_layer_prefers_the_op_with_the_weights():
    names = {"block_1_project", "block_1_project_BN"}
    assert keras_layer("m/block_1_project_BN/FusedBatchNormV3;m/block_1_project/Conv2D", names) == "block_1_project"
    assert keras_layer("m/dense/MatMul;m/dense/Relu", {"dense"}) == "dense"
    assert keras_layer("Identity", {"dense"}) is None
    assert keras_layer("sequential_1/head_1/MatMul", {"head"}) == "head"          # Keras 3's export scopes
    assert keras_layer("m/conv2d_1/Conv2D", {"conv2d", "conv2d_1"}) == "conv2d_1"


@pytest.mark.slow
def test_mobilenet_v2_int8_coverage_and_cost():
    """keras.applications MobileNetV2 0.35 (weights=None, 32x32): an SNR for >= 80 % of the
    quantized ops, in seconds."""
    from gate.measure.convert import layer_names
    from gate.measure.tfenv import keras

    k = keras()
    k.utils.set_random_seed(0)
    model = k.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(32, 32, 3), classes=10)
    x = np.random.default_rng(0).uniform(-1, 1, size=(48, 32, 32, 3)).astype(np.float32)
    name = model.inputs[0].name.split(":")[0]
    ref = to_tflite(model, reference_spec()).content
    cand = to_tflite(model, ConvertSpec(quantization="int8"), {name: x[:32]}).content
    start = time.perf_counter()
    rows = diagnose(cand, ref, {name: x}, keras_layers=layer_names(model))
    seconds = time.perf_counter() - start
    measured, quantized = coverage(rows)
    assert quantized > 60 and measured >= 0.8 * quantized
    assert sum(1 for r in rows if r.layer) >= 0.9 * len(rows) - 3
    assert seconds < 10


def _failed(report: dict) -> dict:
    r = copy.deepcopy(report)
    r["status"], r["exit_code"] = "fail", 1
    r["checks"] = [{**c, "passed": False} if c["name"] == "accuracy.max_drop" else c for c in r["checks"]]
    return r


def test_report_shows_worst_layers_and_on_failure_what_to_try(passing_run):
    _, report = passing_run
    assert report["layers"] and coverage_of(report) == 1.0
    text = render_markdown(report)
    assert "### Layers" in text and "| Worst by error |" in text and "| Largest |" in text
    assert "gate tune" not in text                         # a pass: nothing to try
    failed = render_markdown(_failed(report))
    assert "**What to try** (accuracy.max\\_drop failed" in failed
    assert "`gate tune --config gate.yml --budget-minutes 25`" in failed
    assert 'keep_float: {layers: ["^' in failed
    assert "activations: int16}}`" in failed
    out = io.StringIO()
    print_report(_failed(report), Console(file=out, width=200))
    shown = out.getvalue()
    assert "worst layer by quantization error:" in shown and "gate check never tunes by itself" in shown


def coverage_of(report: dict) -> float:
    q = [r for r in report["layers"] if r["quantized"] and r["op"] not in ("QUANTIZE", "DEQUANTIZE")]
    return sum(r["snr_db"] is not None for r in q) / len(q)
