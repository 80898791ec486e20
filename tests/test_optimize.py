"""Optimization steps on the tiny model: each step kind and option group, layer
selection, verification catching a broken stage, refusals, and the original untouched."""
from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from conftest import tflite_accuracy, train_samples

from gate.config.schema import Policy
from gate.errors import PolicyError
from gate.measure.data import Split
from gate.optimize import apply_steps
from gate.optimize.context import StepContext
from gate.optimize.finetune import CompileInfo
from gate.optimize.metrics import keras_layer_stats
from gate.optimize.verify import verify


def steps(*items, convert=None):
    return Policy.model_validate({"steps": list(items), **({"convert": convert} if convert else {})}).steps


def ctx_for(tiny, model, **kw):
    split = Split("train", tiny.train, {"x": tiny.x_train, "y": tiny.y_train}, "", {"image": tiny.x_train},
                  {"classifier": tiny.y_train})
    return StepContext(split, CompileInfo.of(model), x=tiny.x_train, y=tiny.y_train, **kw)


def optimize(tiny, model, *items, **kw):
    return apply_steps(model, steps(*items, **kw), ctx_for(tiny, model), lambda m, c: {})


@pytest.fixture()
def model(tiny_model):
    return tiny_model.keras


ONE = {"epochs": 1}


def test_original_model_is_never_touched(tiny, model):
    before = [w.copy() for w in model.get_weights()]
    optimize(tiny, model, {"prune": {"final_sparsity": 0.8, "finetune": ONE}})
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("schedule,target", [
    ({"schedule": "constant", "target_sparsity": 0.6}, 0.6),
    ({"schedule": "polynomial_decay", "initial_sparsity": 0.1, "final_sparsity": 0.7}, 0.7),
])
def test_prune_reaches_the_target_on_selected_layers(tiny, model, schedule, target):
    _, stages = optimize(tiny, model, {"prune": {**schedule, "layers": {"exclude_names": ["classifier"]},
                                                 "finetune": {"epochs": 2}}})
    pruned = stages[-1]
    assert pruned.layers["conv"].sparsity == pytest.approx(target, abs=0.02)
    assert pruned.layers["classifier"].sparsity == 0.0
    assert pruned.selection["changed"] == ["conv"]
    assert pruned.selection["skipped"] == [{"layer": "classifier", "reason": "excluded by the policy (name)"}]
    assert not any(type(layer).__name__ == "PruneLowMagnitude" for layer in stages[-1].__dict__.get("layers", {}))


def test_prune_wrappers_are_stripped(tiny, model):
    out, _ = optimize(tiny, model, {"prune": {"final_sparsity": 0.5, "finetune": ONE}})
    assert [type(layer).__name__ for layer in out.layers] == [type(layer).__name__ for layer in model.layers]


def test_two_four_sparsity(tiny, model):
    _, stages = optimize(tiny, model, {"prune": {"sparsity_m_by_n": [2, 4], "layers": {"include": ["Dense"]},
                                                 "finetune": ONE}})
    dense = stages[-1].layers["classifier"]
    assert dense.m_by_n == 1.0 and dense.sparsity == pytest.approx(0.5)


def test_frequency_is_adjusted_with_a_note(tiny, model):
    _, stages = optimize(tiny, model, {"prune": {"final_sparsity": 0.5, "frequency": 1000, "finetune": ONE}})
    assert any("frequency 1000 is too coarse" in n for n in stages[-1].notes)


def test_begin_step_past_training_is_refused(tiny, model):
    with pytest.raises(PolicyError, match="begin_step 100000 is past"):
        optimize(tiny, model, {"prune": {"final_sparsity": 0.5, "begin_step": 100000, "finetune": ONE}})


def test_custom_schedule_needs_trust_then_runs(tiny, model, tmp_path, monkeypatch):
    item = {"prune": {"schedule": {"custom": "my_schedule:Half"}, "finetune": ONE}}
    with pytest.raises(PolicyError, match="honoured only when the base branch's config trusts"):
        optimize(tiny, model, item)
    (tmp_path / "my_schedule.py").write_text(textwrap.dedent("""
        import tensorflow as tf
        import tensorflow_model_optimization as tfmot
        class Half(tfmot.sparsity.keras.PruningSchedule):
            def __call__(self, step):
                return (tf.constant(True), tf.constant(0.5, dtype=tf.float32))
            def get_config(self):
                return {"class_name": "Half", "config": {}}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    trusted = ctx_for(tiny, model, allow_custom_code=True)
    _, stages = apply_steps(model, steps(item), trusted, lambda m, c: {})
    assert stages[-1].layers["conv"].sparsity == pytest.approx(0.5, abs=0.02)
    sys.modules.pop("my_schedule", None)


def test_xnnpack_policy_refuses_a_non_mobilenet_model_naming_the_layer(tiny, model):
    with pytest.raises(PolicyError) as info:
        optimize(tiny, model, {"prune": {"final_sparsity": 0.5, "pruning_policy": "xnnpack", "finetune": ONE}})
    assert "'conv': kernel (3, 3) over 1 input channels (needs 3x3 over 3)" in info.value.message
    assert "padding 'valid' (needs" not in info.value.message and "strides (1, 1)" in info.value.message
    assert "built and trained" in info.value.hint


@pytest.mark.parametrize("init", ["kmeans++", "linear", "density", "random"])
def test_cluster_inits_limit_unique_values(tiny, model, init):
    _, stages = optimize(tiny, model, {"cluster": {"clusters": 4, "init": init, "finetune": ONE}})
    assert stages[-1].layers["classifier"].unique <= 4
    assert stages[-1].layers["conv"].unique <= 4


def test_cluster_per_channel_and_too_few_weights(tiny, model):
    _, stages = optimize(tiny, model, {"cluster": {"clusters": 3, "per_channel": True, "finetune": ONE}})
    conv = stages[-1].layers["conv"]
    assert conv.unique_per_channel <= 3 and conv.unique > 3   # each filter its own centroids
    _, stages = optimize(tiny, model, {"cluster": {"clusters": 100, "finetune": ONE}})
    skipped = {s["layer"]: s["reason"] for s in stages[-1].selection["skipped"]}
    assert skipped["conv"].startswith("too few weights (72 weights for 100 clusters)")


def test_sparsity_preserving_clustering_keeps_zeros(tiny, model):
    _, stages = optimize(tiny, model,
                         {"prune": {"final_sparsity": 0.7, "finetune": {"epochs": 2}}},
                         {"cluster": {"clusters": 4, "preserve_sparsity": True, "finetune": ONE}})
    pruned, clustered = stages[1].layers["classifier"], stages[2].layers["classifier"]
    assert clustered.sparsity >= pruned.sparsity - 0.01


def test_verification_catches_clustering_that_loses_the_zeros(tiny, model):
    policy = Policy.model_validate({"steps": [{"prune": {"final_sparsity": 0.8, "finetune": ONE}},
                                              {"cluster": {"clusters": 4, "finetune": ONE}}]})
    _, stages = apply_steps(model, policy.steps, ctx_for(tiny, model), lambda m, c: {})
    findings = verify([(s.name, s.kind, s.layers) for s in stages], policy.verify)
    assert {(f.layer, f.what, f.stage) for f in findings} >= {("classifier", "sparsity", "clustered")}
    assert "sparsity fell from 80.0% (pruned)" in next(f.message for f in findings if f.layer == "classifier")


def test_verify_on_stats_with_known_answers():
    from gate.config.steps import Verify
    from gate.optimize.metrics import stats

    dense = stats(np.ones((4, 2)), out_axis=1, in_axis=0)
    sparse = stats(np.array([[0, 0], [0, 1.0], [1, 0], [0, 0]]), out_axis=1, in_axis=0)
    assert sparse.sparsity == 0.75 and sparse.m_by_n == 1.0 and dense.m_by_n == 0.0
    seq = [("pruned", "prune", {"d": sparse}), ("qat", "qat", None), ("converted", "converted", {"d": dense})]
    [f] = verify(seq, Verify())
    assert f.stage == "converted" and f.achieved == 0.75 and f.now == 0.0
    assert verify(seq[:2], Verify()) == []


@pytest.mark.parametrize("preserve,scheme", [([], "QAT"), (["sparsity"], "PQAT"), (["clusters"], "CQAT"),
                                             (["sparsity", "clusters"], "PCQAT")])
def test_qat_schemes(tiny, model, preserve, scheme):
    out, stages = optimize(tiny, model, {"qat": {"preserve": preserve, "finetune": ONE}},
                           convert={"quantization": "int8"})
    assert stages[-1].notes[0].startswith(f"scheme: {scheme} ")
    assert any(type(layer).__name__.startswith("Quantize") for layer in out.layers)


def test_selective_qat_annotates_only_chosen_layers(tiny, model):
    out, stages = optimize(tiny, model, {"qat": {"layers": {"include_names": ["classifier"]}, "finetune": ONE}},
                           convert={"quantization": "int8"})
    wrapped = [layer.name for layer in out.layers if type(layer).__name__ == "QuantizeWrapperV2"]
    assert "quant_classifier" in wrapped and "quant_conv" not in wrapped  # tfmot may wrap no-op neighbours
    assert stages[-1].selection["changed"] == ["classifier"]


def test_qat_leaves_what_tfmot_cannot_quantize_float_with_its_reason(tiny):
    from gate.measure.tfenv import keras

    k = keras()
    m = k.Sequential([k.layers.Input((8, 8, 1)), k.layers.Rescaling(2.0, name="scale"), k.layers.Flatten(),
                      k.layers.Dense(10, activation="softmax", name="out")])
    m.compile("adam", "sparse_categorical_crossentropy")
    out, stages = apply_steps(m, steps({"qat": {"finetune": ONE}}, convert={"quantization": "int8"}),
                              ctx_for(tiny, m), lambda mm, c: {})
    [left] = stages[-1].selection["left_float"]
    assert left["layer"] == "scale" and "Rescaling: no QuantizeConfig" in left["reason"]
    assert "1 layer(s) left float" in stages[-1].notes[1]
    assert "quant_out" in [layer.name for layer in out.layers]


def test_qat_with_no_training_is_refused_by_the_schema():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="a qat step must train at least one step"):
        steps({"qat": {"finetune": {"epochs": 0}}}, convert={"quantization": "int8"})
    steps({"qat": {"finetune": {"epochs": 0, "steps": 5}}}, convert={"quantization": "int8"})


def test_layer_selection_by_class_regex_and_min_weights(tiny, model):
    _, stages = optimize(tiny, model, {"prune": {"final_sparsity": 0.5, "finetune": ONE,
                                                 "layers": {"include_regex": "^c", "min_weights": 100}}})
    sel = stages[-1].selection
    assert sel["changed"] == ["classifier"]
    assert sel["skipped"] == [{"layer": "conv", "reason": "too few weights (72 < min_weights 100)"}]
    with pytest.raises(PolicyError, match="no layer selected"):
        optimize(tiny, model, {"prune": {"final_sparsity": 0.5, "layers": {"exclude": ["Conv2D", "Dense"]}}})


def test_loss_comes_from_the_step_or_the_model(tiny):
    from gate.measure.tfenv import keras

    k = keras()
    bare = k.models.clone_model(tiny_model_of(tiny))  # not compiled: no loss known
    with pytest.raises(PolicyError) as info:
        apply_steps(bare, steps({"prune": {"final_sparsity": 0.5, "finetune": ONE}}), ctx_for(tiny, bare), lambda m, c: {})
    assert "needs a loss" in info.value.message and info.value.field == "steps.prune.finetune.loss"
    apply_steps(bare, steps({"prune": {"final_sparsity": 0.5,
                               "finetune": {"epochs": 1, "loss": "sparse_categorical_crossentropy"}}}),
        ctx_for(tiny, bare), lambda m, c: {})


def tiny_model_of(tiny):
    from gate.measure.model import load_model

    return load_model(tiny.keras).keras


def test_subclassed_and_nested_models_are_refused(tiny, model):
    from gate.measure.tfenv import keras

    k = keras()

    class Sub(k.Model):
        def __init__(self):
            super().__init__()
            self.d = k.layers.Dense(10)

        def call(self, x):
            return self.d(k.layers.Flatten()(x))

    sub = Sub()
    sub(np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(PolicyError, match="subclassed"):
        apply_steps(sub, steps({"prune": {"final_sparsity": 0.5}}), ctx_for(tiny, model), lambda m, c: {})



def test_a_nested_model_called_with_training_false_is_inlined_faithfully(tiny):
    """The tf.org transfer-learning pattern: base(x, training=False). The inlined BN keeps
    running in inference mode, so the flat model computes what the nested one did."""
    from gate.measure.tfenv import keras
    from gate.optimize.flatten import flatten

    k = keras()
    inner = k.Sequential([k.Input((8, 8, 1)), k.layers.Conv2D(4, 3, name="c"), k.layers.BatchNormalization(name="bn"),
                          k.layers.ReLU()], name="inner")
    inner.get_layer("bn").set_weights([np.full(4, 2.0), np.ones(4), np.full(4, 0.5), np.full(4, 4.0)])
    inp = k.Input((8, 8, 1))
    out = k.layers.Dense(10, activation="softmax", name="head")(k.layers.Flatten()(inner(inp, training=False)))
    model = k.Model(inp, out)
    flat = flatten(model)
    x = tiny.x_eval[:8]
    np.testing.assert_allclose(flat(x, training=True).numpy(), model(x, training=True).numpy(), rtol=1e-5)


def test_nested_models_are_flattened_and_pruned(tiny):
    """The transfer-learning shape: a functional base with a residual Add inside a
    Sequential with a head. Flattened, pruned, and the outputs before pruning match."""
    from gate.measure.tfenv import keras
    from gate.optimize.flatten import flatten

    k = keras()
    inp = k.Input((8, 8, 1))
    a = k.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    b = k.layers.Conv2D(4, 3, padding="same", name="c2")(a)
    base = k.Model(inp, k.layers.Add(name="add")([a, b]), name="base")
    outer = k.Sequential([k.Input((8, 8, 1)), base, k.layers.Flatten(), k.layers.Dense(10, activation="softmax",
                                                                                         name="head")])
    outer.compile("adam", "sparse_categorical_crossentropy")
    flat = flatten(outer)
    assert [layer.name for layer in flat.layers][1:] == ["c1", "c2", "add", outer.layers[1].name, "head"]
    np.testing.assert_allclose(flat(tiny.x_eval[:4]).numpy(), outer(tiny.x_eval[:4]).numpy(), rtol=1e-6)
    _, stages = apply_steps(outer, steps({"prune": {"final_sparsity": 0.5, "finetune": ONE}}), ctx_for(tiny, outer),
                    lambda m, c: {})
    assert "flattened the nested model(s) base" in stages[0].notes[0]
    assert set(stages[-1].selection["changed"]) == {"c1", "c2", "head"}


def test_stats_on_keras_and_tflite_agree(tiny, model):
    from gate.measure.convert import reference_spec, to_tflite
    from gate.optimize.metrics import tflite_layer_stats

    out, _ = optimize(tiny, model, {"prune": {"final_sparsity": 0.5, "finetune": ONE}})
    keras_stats = keras_layer_stats(out)
    tfl = tflite_layer_stats(to_tflite(out, reference_spec()).content)
    assert set(tfl) == set(keras_stats)
    for name in tfl:
        assert tfl[name].zeros == keras_stats[name].zeros and tfl[name].weights == keras_stats[name].weights


@pytest.mark.parametrize("io,dtype", [("int8", np.int8), ("uint8", np.uint8), ("float32", np.float32)])
def test_qat_model_converts_with_the_policy_io_type(tiny, model, io, dtype):
    """tfmot leaves float io unless told (tfmot #765): the policy's io reaches the converter."""
    from gate.config.schema import ConvertSpec
    from gate.measure.convert import to_tflite
    from gate.measure.litert import make_interpreter

    out, _ = optimize(tiny, model, {"qat": {"finetune": ONE}}, convert={"quantization": "int8"})
    samples = train_samples(tiny, 20)
    content = to_tflite(out, ConvertSpec(quantization="int8", io=io), samples).content
    interp = make_interpreter(content, threads=1)
    assert interp.get_input_details()[0]["dtype"] == dtype
    assert interp.get_output_details()[0]["dtype"] == dtype
    assert tflite_accuracy(content, tiny) > 0.5


def test_structured_step_shrinks_and_fine_tunes(tiny, model):
    out, stages = optimize(tiny, model, {"structured_prune": {"ratio": 0.5, "finetune": ONE}})
    assert out.get_layer("conv").filters == 4 and out.get_layer("classifier").units == 10
    assert stages[-1].params < stages[0].params
    assert any("conv: 8 -> 4 filters" == n for n in stages[-1].notes)
    skipped = {s["layer"]: s["reason"] for s in stages[-1].selection["skipped"]}
    assert skipped["classifier"] == "the output layer defines the classes"


def test_flattening_keeps_the_input_names():
    """Data and the converted signature go by input name: a flattened copy keeps them."""
    from gate.measure.tfenv import keras
    from gate.optimize.flatten import flatten

    k = keras()
    rows, cols = k.Input((4,), name="rows"), k.Input((4,), name="cols")
    head = k.Sequential([k.Input((8,)), k.layers.Dense(3)], name="head")
    model = k.Model([rows, cols], head(k.layers.Concatenate()([rows, cols])))
    assert flatten(model).input_names == ["rows", "cols"]
