"""convert.keep_float (selective fallback): validated at the door, applied by both quantizers
so the kept ops really stay float in the flatbuffer, `worst: N` ranked by ablation, and a
regex matching nothing is bad input naming the field."""
from __future__ import annotations

import pytest
from conftest import run_check, train_samples, write_config
from test_config import config, config_error

from gate.config.schema import ConvertSpec
from gate.errors import PolicyError
from gate.measure.convert import quantize_committed, reference_spec, to_tflite
from gate.measure.tflite_graph import read_graph

BASE = "model: m.keras\ndata:\n  train: train.npz\n  eval: eval.npz\n"


@pytest.mark.parametrize("policy, field, words", [
    ("{convert: {quantization: none, keep_float: {layers: [dense]}}}", "policy.convert.keep_float",
     "keep_float needs a quantizing mode"),
    ("{convert: {quantization: dynamic, keep_float: {worst: 2}}}", "policy.convert.keep_float",
     "use quantizer: litert"),
    ("{convert: {quantization: int8, keep_float: {layers: [dense], activations: int16}}}",
     "policy.convert.keep_float", "needs quantizer: litert"),
    ("{convert: {quantizer: litert, recipe: dynamic_wi8_afp32, keep_float: {layers: [d], activations: int16}}}",
     "policy.convert.keep_float", "activations: int16 applies to static int8"),
    ("{convert: {quantizer: litert, keep_float: {layers: [dense]}}}", "policy.convert.keep_float",
     "nothing is quantized"),
    ("{convert: {quantization: int8, keep_float: {}}}", "policy.convert.keep_float", "an empty keep_float"),
    ("{convert: {quantization: int8, keep_float: {layers: [ok, '(']}}}", "policy.convert.keep_float.layers[1]",
     "not a regular expression"),
    ("{convert: {quantization: int8, keep_float: {worst: -1}}}", "policy.convert.keep_float.worst",
     "greater than or equal to 0"),
    ("{extends: qat-int8, convert: {keep_float: {worst: 1}}}", "policy",
     "keep_float applies to post-training quantization"),
])
def test_bad_keep_float_is_refused_naming_the_field(tmp_path, policy, field, words):
    err = config_error(config(tmp_path, BASE + f"policy: {policy}\n"), PolicyError)
    assert err.field == field and err.line == 5
    assert words in err.message


def _kinds(content: bytes) -> dict[str, str]:
    """{op type + first output name: output dtype} of the compute ops."""
    g = read_graph(content)
    return {g.tensors[op.outputs[0]].name: g.tensors[op.outputs[0]].type for op in g.ops
            if op.type not in ("QUANTIZE", "DEQUANTIZE")}


def _by_layer(content: bytes, layer: str) -> list[str]:
    return [dtype for name, dtype in _kinds(content).items() if f"/{layer}/" in name]


def _weights(content: bytes, layer: str) -> set[str]:
    g = read_graph(content)
    return {t.type for op in g.ops if f"/{layer}/" in g.tensors[op.outputs[0]].name for t in g.constants(op)
            if len(t.shape) > 1}


def test_tflite_converter_keeps_the_named_layer_float(tiny, tiny_model):
    spec = ConvertSpec.model_validate({"quantization": "int8", "keep_float": {"layers": ["^classifier$"]}})
    cand = to_tflite(tiny_model.keras, spec, train_samples(tiny, 50))
    assert _by_layer(cand.content, "classifier") == ["FLOAT32"] and _weights(cand.content, "classifier") == {"FLOAT32"}
    assert _by_layer(cand.content, "conv") == ["INT8"] and _weights(cand.content, "conv") == {"INT8"}
    assert cand.precision == "int8"
    assert list(cand.fallback["by_rule"].values()) == ["layers[0] ^classifier$"]


def test_litert_keeps_the_named_layer_float_or_int16(tiny, tiny_model):
    float_tflite = to_tflite(tiny_model.keras, reference_spec()).content
    samples = train_samples(tiny, 50)
    kept = quantize_committed(float_tflite, ConvertSpec.model_validate(
        {"quantizer": "litert", "quantization": "int8", "keep_float": {"layers": ["conv"]}}), samples)
    assert _by_layer(kept.content, "conv") == ["FLOAT32"] and _by_layer(kept.content, "classifier") == ["INT8"]
    int16 = quantize_committed(float_tflite, ConvertSpec.model_validate(
        {"quantizer": "litert", "quantization": "int8", "keep_float": {"layers": ["conv"], "activations": "int16"}}),
        samples)
    assert _by_layer(int16.content, "conv") == ["INT16"] and _by_layer(int16.content, "classifier") == ["INT8"]
    assert int16.fallback["activations"] == "int16"


def test_worst_ranks_by_ablation_and_keeps_the_top(tiny, tiny_model):
    spec = ConvertSpec.model_validate({"quantization": "int8", "keep_float": {"worst": 1}})
    cand = to_tflite(tiny_model.keras, spec, train_samples(tiny, 60))
    fb = cand.fallback
    assert fb["examples"] == 60 and 0 <= fb["baseline"]["agreement"] <= 1
    ranking = fb["ranking"]
    assert ranking and ranking == sorted(ranking, key=lambda h: (-h["agreement_gain"], -h["snr_gain_db"]))
    helped = [h for h in ranking if h["agreement_gain"] > 0 or (h["agreement_gain"] == 0 and h["snr_gain_db"] >= 0.1)]
    assert fb["worst"] == 1 and fb["kept"] == [h["name"] for h in helped[:1]]
    assert fb["by_rule"] == {h["name"]: "worst" for h in helped[:1]}
    assert all(_kinds(cand.content)[name] == "FLOAT32" for name in fb["kept"])


def test_a_regex_matching_nothing_ends_in_exit_2_naming_the_field(tiny, tmp_path):
    cfg = write_config(tmp_path, tiny, policy={"extends": "int8",
                                               "convert": {"keep_float": {"layers": ["conv", "no_such_layer"]}}})
    result, report = run_check(tmp_path, cfg, "--no-baseline")
    assert result.exit_code == 2 and report["status"] == "error"
    assert report["error"]["field"] == "policy.convert.keep_float.layers[1]"
    assert "'no_such_layer' matches no op" in report["error"]["message"]
    assert "classifier" in report["error"]["hint"]


def test_keras3_model_layer_names_select_ops():
    """Keras 3 exports scope tensors as `head_1` for layer `head`: the regex on the layer
    name still selects the op, and only it stays float."""
    import numpy as np

    from gate.measure.tfenv import keras3

    k = keras3()
    model = k.Sequential([k.Input((8, 8, 1), name="image"), k.layers.Conv2D(8, 3, activation="relu", name="conv"),
                          k.layers.Flatten(name="flat"), k.layers.Dense(10, activation="softmax", name="head")])
    x = np.random.default_rng(0).uniform(0, 1, (40, 8, 8, 1)).astype(np.float32)
    cand = to_tflite(model, ConvertSpec.model_validate({"quantization": "int8", "keep_float": {"layers": ["^head$"]}}),
                     {"image": x})
    kinds = _kinds(cand.content)
    assert [dtype for name, dtype in kinds.items() if "/head" in name] == ["FLOAT32"]
    assert [dtype for name, dtype in kinds.items() if "/conv" in name] == ["INT8"]
