"""Scoring and integer io: known answers on constructed outputs; metrics beyond top-1;
outputs mapped back to Keras names."""
from __future__ import annotations

import numpy as np
import pytest

from gate.errors import ModelError
from gate.measure.evaluate import Scoring, evaluate_tflite, map_outputs
from gate.measure.litert import dequantize_output, quantize_input
from gate.measure.scores import Planned, compute, plan, resolve
from gate.measure.tasks import OutputTask

CLS = {"o": OutputTask("o", "classifier", 3, "softmax")}


def _split(y: dict, tasks: dict):
    from gate.measure.data import Split

    n = len(next(iter(y.values())))
    return Split("eval", None, {"x": np.zeros((n, 1))}, "0", {"x": np.zeros((n, 1))}, y, tasks)


def test_top_k_on_known_outputs():
    out = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.4, 0.4, 0.2]])
    y = np.array([1, 1, 0, 1])
    r = Scoring.of(_split({"o": y}, CLS), None, [], [1, 2]).score({"o": out}, 0.0)
    # top-1: [1,0,2,0(tie->lower id)] vs y -> only the first is right
    assert r.predictions == (1, 0, 2, 0)
    assert r.accuracy[1] == pytest.approx(0.25)
    assert r.accuracy[2] == pytest.approx(0.75)
    assert r.metrics["accuracy"].value == pytest.approx(0.25) and r.metrics["top_2"].value == pytest.approx(0.75)


def test_single_sigmoid_output_is_binary():
    tasks = {"p": OutputTask("p", "binary", 1, "sigmoid")}
    r = Scoring.of(_split({"p": np.array([1, 0, 0])}, tasks), ["binary_accuracy", "auc", "accuracy"], [], [1]).score(
        {"p": np.array([[0.9], [0.2], [0.6]])}, 0.0)
    assert r.predictions == (1, 0, 1) and r.accuracy[1] == pytest.approx(2 / 3)
    assert r.metrics["binary_accuracy"].value == pytest.approx(2 / 3)
    assert r.metrics["auc"].value == pytest.approx(1.0)


def test_k_larger_than_classes_is_capped():
    r = Scoring.of(_split({"o": np.array([2, 2, 2])}, CLS), None, [], [5]).score({"o": np.eye(3)}, 0.0)
    assert r.accuracy[5] == 1.0


def test_regression_metrics_and_fidelity():
    tasks = {"v": OutputTask("v", "regression", 1, "linear")}
    y = np.array([[1.0], [2.0], [4.0]])
    scoring = Scoring.of(_split({"v": y}, tasks), ["mae", "mse", "rmse", "max_abs_error"], [], [1])
    original = {"v": np.array([[1.0], [2.0], [3.0]])}
    r = scoring.score({"v": np.array([[2.0], [2.0], [2.0]])}, 0.0, original)
    assert r.metrics["mae"].value == pytest.approx(1.0) and r.metrics["mse"].value == pytest.approx(5 / 3)
    assert r.metrics["rmse"].value == pytest.approx(np.sqrt(5 / 3))
    assert r.metrics["max_abs_error"].value == pytest.approx(2.0)
    assert list(r.metrics["mae"].per_example) == [1.0, 0.0, 2.0]
    # fidelity vs the original outputs: noise 1 + 0 + 1, signal 1 + 4 + 9
    assert r.metrics["snr_db"].value == pytest.approx(10 * np.log10(14 / 2))
    assert r.metrics["max_abs_diff"].value == pytest.approx(1.0)
    assert r.accuracy == {} and r.predictions is None
    identical = scoring.score(original, 0.0, original)
    assert identical.metrics["snr_db"].value == 200.0 and identical.metrics["cosine"].value == pytest.approx(1.0)


def test_a_metric_that_does_not_apply_says_why():
    p = Planned("mae", "o", resolve("mae", CLS)[2])
    value = compute(p, {"o": np.eye(3)}, {"o": np.array([0, 1, 2])}, CLS, None)
    assert value.value is None and "does not apply to output 'o', a classifier" in value.why
    no_y = compute(Planned("accuracy", "o", resolve("accuracy", CLS)[2]), {"o": np.eye(3)}, {}, CLS, None)
    assert no_y.value is None and "no targets" in no_y.why


def test_names_are_qualified_for_several_outputs():
    tasks = {"digit": OutputTask("digit", "classifier", 10, "softmax"), "ink": OutputTask("ink", "regression", 1, "linear")}
    names = [p.name for p in plan(None, [], tasks, {"digit", "ink"}, [1])]
    assert "digit/accuracy" in names and "ink/mae" in names and "ink/snr_db" in names
    assert "ink/top1_agreement" not in names
    assert resolve("mae", tasks)[:2] == ("ink/mae", "ink")          # the one output it can apply to
    name, output, _, why = resolve("snr_db", tasks)
    assert output is None and "digit/snr_db, ink/snr_db" in why
    assert resolve("nope/mae", tasks)[3].startswith("the model has no output 'nope'")


def test_outputs_map_back_to_keras_names():
    outs = {"output_1": np.ones(1), "output_0": np.zeros(1), "output_10": np.full(1, 2), "output_2": np.full(1, 3)}
    mapped = map_outputs(outs, ["a", "b", "c", "d"], where="m")
    assert [float(mapped[k][0]) for k in "abcd"] == [0, 1, 3, 2]      # natural order, not string order
    assert set(map_outputs({"digit": 1, "ink": 2}, ["ink", "digit"], where="m")) == {"ink", "digit"}
    assert map_outputs({"quant_digit": 1, "quant_ink": 2}, ["digit", "ink"], where="m") == {"digit": 1, "ink": 2}
    # dict outputs named by key, converted from a tf_keras copy: matched through their layers
    assert map_outputs({"quant_head_a": 1, "quant_head_b": 2}, ["cls", "score"], where="m",
                       layers=["head_a", "head_b"]) == {"cls": 1, "score": 2}
    with pytest.raises(ModelError, match="cannot be matched"):
        map_outputs({"x": 1, "y": 2}, ["a", "b"], where="m")


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


def test_unquantized_integer_inputs_are_cast():
    q = quantize_input(np.array([[3, 7]], np.int64), {"dtype": np.int32, "quantization": (0.0, 0)})
    assert q.dtype == np.int32 and q.tolist() == [[3, 7]]


def test_tflite_batched_equals_one_by_one(tiny, tiny_model):
    from gate.measure.convert import reference_spec, to_tflite
    from gate.measure.data import bind, head, load_split

    content = to_tflite(tiny_model.keras, reference_spec()).content
    split = head(bind(load_split(tiny.eval, "eval"), tiny_model.facts), 37)
    scoring = Scoring.of(split, None, [], [1])
    names = tiny_model.facts.output_names
    batched = evaluate_tflite(content, scoring, 16, names)   # 16+16+5: the last batch is resized
    single = evaluate_tflite(content, scoring, 1, names)
    assert batched.predictions == single.predictions and batched.examples == 37


def test_every_catalogue_metric_is_computed_by_its_own_row():
    """No metric falls through to another's computation: the catalogue and the tables agree."""
    from gate.config.metrics import METRICS
    from gate.measure.scores import FIDELITY_METRICS, LABEL_METRICS

    assert set(LABEL_METRICS) | set(FIDELITY_METRICS) == set(METRICS)
    assert {n for n, m in METRICS.items() if m.labels} == set(LABEL_METRICS)
    assert not set(LABEL_METRICS) & set(FIDELITY_METRICS)
