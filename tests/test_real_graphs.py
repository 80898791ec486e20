"""The CI slice of benchmarks/zoo.py: a Conv->BN->ReLU CNN with default layer names and a
small residual model (with a BN after the Add, which tfmot cannot fold), run through
`gate check` with prune-int8, qat-int8 and structured-int8 (their steps, shorter budgets):
never exit 2, the output layer stays dense, the layers left float are listed, the
structured model is smaller. Plus: refusals come before any conversion or fine-tuning, a
later failure keeps the stages that finished, fine-tuning budgets, BN momentum, progress."""
from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from conftest import digits_arrays, run_check

QUICK = {"prune-int8": [{"prune": {"finetune": {"epochs": 3}}}, {"qat": {"finetune": {"epochs": 1}}}],
         "qat-int8": [{"qat": {"finetune": {"epochs": 1}}}],
         "structured-int8": [{"structured_prune": {"finetune": {"epochs": 3}}}]}


def bn_cnn(k):
    L = k.layers
    return k.Sequential([k.Input((8, 8, 1)), L.Conv2D(16, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
                         L.Conv2D(32, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
                         L.GlobalAveragePooling2D(), L.Dense(10, activation="softmax")])


def residual(k):
    L = k.layers
    i = k.Input((8, 8, 1))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(i)))
    y = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(x)))
    y = L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(y))
    z = L.ReLU()(L.BatchNormalization()(L.Add()([x, y])))      # a BN after an Add: tfmot cannot fold it
    return k.Model(i, L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(z)))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from gate.measure.tfenv import keras

    k = keras()
    x_tr, y_tr, x_ev, y_ev = digits_arrays()
    d = tmp_path_factory.mktemp("real")
    np.savez(d / "train.npz", x=x_tr, y=y_tr)
    np.savez(d / "eval.npz", x=x_ev, y=y_ev)
    out = {}
    for name, build in (("bn_cnn", bn_cnn), ("residual", residual)):
        k.backend.clear_session()          # default layer names from scratch: conv2d, ..., dense
        k.utils.set_random_seed(0)
        model = build(k)
        for layer in model.layers:
            if isinstance(layer, k.layers.BatchNormalization):
                layer.momentum = 0.9      # the short fit needs it (then saved; the gate lowers 0.99 itself)
        model.compile(optimizer=k.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
        model.fit(x_tr, y_tr, epochs=6, batch_size=32, verbose=0)
        model.save(d / f"{name}.keras")
        out[name] = d / f"{name}.keras"
    return d, out


def gate_yml(directory, model, policy, **extra):
    cfg = {"model": str(model), "data": {"train": str(model.parent / "train.npz"), "eval": str(model.parent / "eval.npz")},
           "policy": policy, "thresholds": {"accuracy": {"max_drop": 0.05}},
           "benchmark": {"threads": 1, "warmup": 2, "runs": 20}, **extra}
    path = directory / "gate.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bn_cnn", "residual"])
@pytest.mark.parametrize("preset", ["prune-int8", "qat-int8", "structured-int8"])
def test_presets_on_real_graphs(models, tmp_path, name, preset):
    _, paths = models
    cfg = gate_yml(tmp_path, paths[name], {"extends": preset, "steps": QUICK[preset]})
    result, report = run_check(tmp_path, cfg, "--no-baseline", *(["--in-process"] if preset != "prune-int8" else []))
    assert report["exit_code"] in (0, 1), report.get("error")
    plan = report["plan"]
    [head] = plan["roles"]["output"]
    [stem] = plan["roles"]["input"]
    assert head.startswith("dense") and not re.search("(logits|head|classifier)$", head)   # the old regex missed it
    stages = {s["name"]: s for s in report["stages"]}
    assert result.output.count("notes") >= 1 and "step 1 " in result.output
    if preset == "prune-int8":
        assert stages["pruned"]["layers"][head]["sparsity"] == 0.0
        assert stages["converted"]["layers"][head]["sparsity"] < 0.05
        assert stages["pruned"]["weights"]["sparsity"] > 0.5
        assert any(left["layer"] == head and "role: output" in left["reason"] for left in plan["steps"][0]["left"])
    if preset == "qat-int8":
        left = plan["steps"][0]["left_float"]
        if name == "residual":
            [bn] = left
            assert bn["class"] == "BatchNormalization" and "BatchNormalization after Add" in bn["reason"]
            assert "left float" in result.output
        else:
            assert left == []       # Conv -> BN -> ReLU: tfmot folds every BN
        assert report["candidate"]["evaluation"]["accuracy"]["top1"] > 0.5
    if preset == "structured-int8":
        assert stages["structured"]["params"] < stages["original"]["params"]
        assert plan["steps"][0]["groups"]["shrunk"] >= 1
        assert stem in plan["steps"][0]["changes"]   # on the residual model: the stream's group, stem included


def test_a_refusal_comes_before_any_conversion_or_fine_tuning(tiny, tmp_path):
    cfg = gate_yml(tmp_path, tiny.keras, "latency-xnnpack")
    _, report = run_check(tmp_path, cfg, "--no-baseline", "--in-process")
    assert report["exit_code"] == 2
    assert "'conv'" in report["error"]["message"] and "built and trained" in report["error"]["hint"]
    assert "plan" in report["timings_s"] and "convert_reference" not in report["timings_s"]
    assert report["plan"]["steps"][0]["error"].startswith("prune: pruning_policy xnnpack")


def test_a_later_failure_keeps_the_stages_that_finished(tiny, tmp_path, monkeypatch):
    from gate import optimize
    from gate.errors import PolicyError

    def broken(model, spec, ctx):
        raise PolicyError("cluster: broke on purpose", field="steps.cluster")

    monkeypatch.setitem(optimize.STEPS, "cluster", broken)
    cfg = gate_yml(tmp_path, tiny.keras, {"steps": [{"prune": {"final_sparsity": 0.5, "finetune": {"epochs": 1}}},
                                                    {"cluster": {"clusters": 8, "finetune": {"epochs": 1}}}],
                                          "convert": {"quantization": "int8"}})
    _, report = run_check(tmp_path, cfg, "--no-baseline", "--in-process")
    assert report["exit_code"] == 2 and "broke on purpose" in report["error"]["message"]
    assert [s["name"] for s in report["stages"]] == ["original", "pruned"]
    assert report["stages"][1]["weights"]["sparsity"] > 0.3
    assert [s["kind"] for s in report["plan"]["steps"]] == ["prune", "cluster"]


def test_fine_tuning_budget_bn_momentum_and_progress(models, tiny):
    from gate.config.steps import Finetune
    from gate.measure.tfenv import keras
    from gate.optimize.context import StepContext
    from gate.optimize.finetune import CompileInfo, batch_norms, fit, train_steps

    k = keras()
    model = k.models.load_model(models[1]["bn_cnn"])
    for bn in batch_norms(model):
        bn.momentum = 0.999                  # as keras.applications ship it
    model.compile("adam", "sparse_categorical_crossentropy")
    seen, lines = [], []

    class Spy(k.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append([bn.momentum for bn in batch_norms(self.model)])

    ctx = StepContext(None, CompileInfo.of(model), label="step 1/1 prune", progress=lines.append)
    spec = Finetune(steps=23, batch_size=32)             # 600 examples: 19 batches an epoch
    fit(model, spec, tiny.x_train, tiny.y_train, callbacks=[Spy()], ctx=ctx)
    assert len(seen) == 23 == train_steps(600, spec)
    assert {m for row in seen for m in row} == {0.9}     # lowered while fine-tuning
    assert {bn.momentum for bn in batch_norms(model)} == {0.999}   # restored: the saved config is unchanged
    assert len(lines) == 2 and lines[0].startswith("step 1/1 prune: epoch 1/2, loss ")
    assert train_steps(600, Finetune(epochs=10, max_steps=50)) == 50
    assert train_steps(600, Finetune(epochs=2)) == 38


def test_xnnpack_policy_on_a_symmetric_mobilenet_keeps_the_classifier_dense():
    """A MobileNet built as PruneForLatencyOnXNNPack wants it (ZeroPadding2D(1) + a 'valid'
    3x3 stride-2 stem, 1x1 convs, GAP): tfmot accepts it, and `exclude_roles: [output]`
    keeps the 1x1 classifier conv (which tfmot would prune, like MobileNetV1's conv_preds)."""
    from gate.config.schema import Policy
    from gate.measure.data import Split
    from gate.measure.tfenv import keras
    from gate.optimize import apply_steps
    from gate.optimize.context import StepContext
    from gate.optimize.finetune import CompileInfo
    from gate.optimize.xnnpack import xnnpack_problems

    k = keras()
    L = k.layers
    k.utils.set_random_seed(0)
    i = k.Input((16, 16, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, strides=2, padding="valid", name="stem")(L.ZeroPadding2D(1)(i))))
    x = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same", name="dw")(x)))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 1, name="pw")(x)))
    x = L.Conv2D(10, 1, name="conv_preds")(L.GlobalAveragePooling2D(keepdims=True)(x))
    model = k.Model(i, L.Softmax()(L.Reshape((10,))(x)))
    model.compile("adam", "sparse_categorical_crossentropy")
    assert xnnpack_problems(model) == []
    rng = np.random.default_rng(0)
    x_tr, y_tr = rng.uniform(size=(64, 16, 16, 3)).astype(np.float32), rng.integers(0, 10, 64)
    policy = Policy.model_validate({"steps": [{"prune": {"final_sparsity": 0.5, "pruning_policy": "xnnpack",
                                                         "layers": {"exclude_roles": ["output"]},
                                                         "finetune": {"epochs": 2}}}]})
    ctx = StepContext(Split("train", None, {"x": x_tr, "y": y_tr}, ""), CompileInfo.of(model), x=x_tr, y=y_tr)
    _, stages = apply_steps(model, policy.steps, ctx, lambda m, c: {})
    assert stages[-1].selection["changed"] == ["pw"]
    assert [s["layer"] for s in stages[-1].selection["skipped"]] == ["conv_preds"]
    assert stages[-1].layers["pw"].sparsity > 0.3 and stages[-1].layers["conv_preds"].sparsity == 0.0
