"""Models as other people's code saves them (issue 21), generated here, small: a float16
.tflite, one without a signature, one with repeated tensor names, one with a dynamic input,
an old-format compiled .h5, a Keras SavedModel with a custom loss, a plain TF SavedModel, a
graph that breaks tfmot's QAT layout transform. Each ends in a judged verdict (exit 0/1)
or, where the user must change something, exit 2 naming the fix; report.json's io types
are the candidate file's; a policy that changed nothing fails."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import digits_arrays, run_check

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Wild:
    dir: Path
    train: Path
    eval: Path
    signal_train: Path      # 1-D signals (N, 64) for the dynamic-input model
    signal_eval: Path
    nosig: Path             # float32, no signature
    fp16: Path              # float16 weights + DEQUANTIZE, no signature
    dup: Path               # every tensor named "same"
    dynamic: Path           # input shape_signature [-1, -1]
    small: Path             # every weight < 1024 values, signature
    old_h5: Path            # compiled, training_config in the old format (loss a string)
    badloss_h5: Path        # training_config names a loss tf_keras does not know
    keras_sm: Path          # Keras SavedModel compiled with a <lambda> loss
    plain_sm: Path          # tf.Module with a serving signature
    qat_break: Path         # Concatenate([a, b, a]): tfmot's layout transform rewires it wrong


def _digits_cnn(k, seed=0, name="image"):
    k.utils.set_random_seed(seed)
    L = k.layers
    i = k.Input((8, 8, 1), name=name)
    h = L.Conv2D(8, 3, activation="relu")(i)
    h = L.Dense(32, activation="relu")(L.Flatten()(h))
    return k.Model(i, L.Dense(10, activation="softmax")(h))


def _no_signature(tf, model, spec, **modes) -> bytes:
    """The converter from a concrete function, as older exporters wrote files: no signature."""
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    conv.experimental_lower_to_saved_model = False
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if modes.get("float16"):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    return bytes(conv.convert())


@pytest.fixture(scope="module")
def wild(tmp_path_factory) -> Wild:
    import h5py

    from gate.measure.tfenv import keras, tf as load_tf
    from gate.measure.tflite_rewrite import _read, _write

    tf, k = load_tf(), keras()
    L = k.layers
    d = tmp_path_factory.mktemp("wild")
    x_tr, y_tr, x_ev, y_ev = digits_arrays(400, 150)
    np.savez(d / "train.npz", x=x_tr, y=y_tr)
    np.savez(d / "eval.npz", x=x_ev, y=y_ev)
    np.savez(d / "strain.npz", x=x_tr.reshape(len(x_tr), 64), y=y_tr)
    np.savez(d / "seval.npz", x=x_ev.reshape(len(x_ev), 64), y=y_ev)

    cnn = _digits_cnn(k)
    cnn.compile("adam", "sparse_categorical_crossentropy")
    cnn.fit(x_tr, y_tr, epochs=4, verbose=0)
    spec = tf.TensorSpec((None, 8, 8, 1), tf.float32)
    (d / "nosig.tflite").write_bytes(_no_signature(tf, cnn, spec))
    (d / "fp16.tflite").write_bytes(_no_signature(tf, cnn, spec, float16=True))
    model = _read((d / "nosig.tflite").read_bytes())
    for t in model.subgraphs[0].tensors:
        t.name = b"same"
    (d / "dup.tflite").write_bytes(_write(model))

    k.utils.set_random_seed(1)     # a 1-D signal classifier with a dynamic length
    i = k.Input((None,), name="signal")
    h = L.Conv1D(16, 3, activation="relu")(L.Reshape((-1, 8))(i))
    sig = k.Model(i, L.Dense(10, activation="softmax")(L.GlobalMaxPooling1D()(h)))
    sig.compile("adam", "sparse_categorical_crossentropy")
    sig.fit(x_tr.reshape(-1, 64), y_tr, epochs=4, verbose=0)
    (d / "dynamic.tflite").write_bytes(_no_signature(tf, sig, tf.TensorSpec((None, None), tf.float32)))

    from gate.measure.convert import reference_spec, to_tflite

    k.utils.set_random_seed(2)     # weights of < 1024 values only
    small = k.Sequential([k.Input((8, 8, 1), name="image"), L.Conv2D(4, 3, strides=3, activation="relu"),
                          L.GlobalAveragePooling2D(), L.Dense(10, activation="softmax")])
    (d / "small.tflite").write_bytes(to_tflite(small, reference_spec()).content)

    old = _digits_cnn(k, 3)
    old.compile("adam", "sparse_categorical_crossentropy")
    old.fit(x_tr, y_tr, epochs=3, verbose=0)
    old.save(d / "old.h5")
    with h5py.File(d / "old.h5", "r+") as f:   # how Keras 2.2 wrote it: loss a plain string, old optimizer keys
        f.attrs["training_config"] = json.dumps({
            "optimizer_config": {"class_name": "Adam", "config": {"lr": 0.001, "beta_1": 0.9, "beta_2": 0.999,
                                                                   "decay": 0.0, "epsilon": 1e-07, "amsgrad": False}},
            "loss": "sparse_categorical_crossentropy", "metrics": ["acc"], "sample_weight_mode": None,
            "loss_weights": None}).encode()
        f.attrs["keras_version"] = b"2.2.4"
    old.save(d / "badloss.h5")
    with h5py.File(d / "badloss.h5", "r+") as f:
        config = json.loads(f.attrs["training_config"])
        config["loss"] = "my_focal_loss"
        f.attrs["training_config"] = json.dumps(config).encode()

    lam = _digits_cnn(k, 4)
    lam.compile("adam", loss=lambda yt, yp: k.losses.sparse_categorical_crossentropy(yt, yp))
    lam.fit(x_tr, y_tr, epochs=3, verbose=0)
    lam.save(d / "keras_sm", save_format="tf")

    weights = [tf.Variable(w) for w in cnn.get_weights()]

    class Plain(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = weights

        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32, name="image")])
        def serve(self, image):
            h = tf.nn.relu(tf.nn.conv2d(image, self.w[0], 1, "VALID") + self.w[1])
            h = tf.nn.relu(tf.reshape(h, [-1, 288]) @ self.w[2] + self.w[3])
            return {"probs": tf.nn.softmax(h @ self.w[4] + self.w[5])}

    plain = Plain()
    tf.saved_model.save(plain, str(d / "plain_sm"), signatures={"serving_default": plain.serve})

    k.utils.set_random_seed(5)
    i = k.Input((8, 8, 1), name="image")
    a = L.Conv2D(4, 3, padding="same", name="branch_a")(i)
    b = L.Conv2D(4, 3, padding="same", name="branch_b")(i)
    h = L.Add(name="add")([L.Concatenate(name="concat")([a, b, a]), L.Conv2D(12, 1, name="shortcut")(i)])
    brk = k.Model(i, L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(L.ReLU()(h))))
    brk.compile("adam", "sparse_categorical_crossentropy")
    brk.fit(x_tr, y_tr, epochs=4, verbose=0)
    brk.save(d / "qat_break.h5")
    return Wild(d, d / "train.npz", d / "eval.npz", d / "strain.npz", d / "seval.npz", d / "nosig.tflite",
                d / "fp16.tflite", d / "dup.tflite", d / "dynamic.tflite", d / "small.tflite", d / "old.h5",
                d / "badloss.h5", d / "keras_sm", d / "plain_sm", d / "qat_break.h5")


def check(tmp_path: Path, model: Path, policy, train: Path, eval_: Path, *, trust=False, steps_epochs=None,
          thresholds=None):
    if steps_epochs is not None:      # a QAT policy with a short fine-tune (seconds, not minutes)
        policy = {"extends": policy, "steps": [{"qat": {"finetune": {"epochs": steps_epochs}}}]}
    cfg = {"model": str(model), "data": {"train": str(train), "eval": str(eval_)}, "policy": policy,
           "thresholds": thresholds or {"accuracy": {"max_drop": 0.5}},
           "benchmark": {"threads": 1, "warmup": 1, "runs": 5}}
    if trust:
        cfg["trust_model_code"] = True
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "gate.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return run_check(tmp_path, tmp_path / "gate.yml", "--in-process")


def _io(content: bytes) -> str:
    from gate.measure.tflite_tensors import io_label

    return io_label(content)


# -- units: the flatbuffer rewrites and readers -------------------------------------------------

def test_float16_weights_back_to_float32_exactly(wild):
    from gate.measure.litert import run_signature
    from gate.measure.tflite_inspect import tflite_kind
    from gate.measure.tflite_rewrite import dequantize_float16

    fp16 = wild.fp16.read_bytes()
    out, n = dequantize_float16(fp16)
    assert tflite_kind(fp16).kind == "float16" and tflite_kind(out).kind == "float"
    assert n == tflite_kind(fp16).const_types["FLOAT16"] > 0 and "FLOAT16" not in tflite_kind(out).const_types
    assert "DEQUANTIZE" not in tflite_kind(out).ops
    x = {"x": np.load(wild.eval)["x"][:20]}
    a, b = run_signature(fp16, x, batch=20), run_signature(out, x, batch=20)
    assert np.array_equal(next(iter(a.values())), next(iter(b.values())))


def test_static_recipe_candidate_has_int8_io_and_the_record_says_so(wild):
    from gate.config.schema import ConvertSpec
    from gate.measure.convert import quantize_committed

    x = np.load(wild.train)["x"]
    cand = quantize_committed(wild.nosig.read_bytes(), ConvertSpec(quantization="int8"), {"x": x[:50]})
    assert cand.io == _io(cand.content) == "int8" and cand.info()["io"] == "int8"
    dyn = quantize_committed(wild.nosig.read_bytes(), ConvertSpec(quantization="dynamic"), None)
    assert dyn.io == "float32" and dyn.precision == "dynamic_range"


def test_a_policy_that_changes_nothing_says_the_true_reason(wild):
    from gate.measure.litert_quant import quantize
    from gate.measure.tflite_tensors import policy_effect, read_graph
    from gate.verdict.effect import effect_checks

    small = wild.small.read_bytes()
    out = quantize(small, "dynamic_legacy_wi8_afp32")
    effect = policy_effect(small, out, "dynamic_legacy_wi8_afp32")
    largest = max(t.elements for t in read_graph(small).tensors if t.constant and len(t.shape) >= 2)
    assert effect.none and f"has {largest:,})" in effect.reason and largest < 1024
    [c] = effect_checks(small, out, "dynamic_legacy_wi8_afp32")
    assert c.name == "policy.effect" and not c.passed and c.value == 0
    # large weights that a recipe leaves float: the reason names the ops, not a size cut-off
    nosig = wild.nosig.read_bytes()
    effect = policy_effect(nosig, nosig, "dynamic_wi8_afp32")
    assert effect.none and "1024" not in effect.reason and "FULLY_CONNECTED" in effect.reason
    assert effect_checks(nosig, quantize(nosig, "dynamic_wi8_afp32"), "dynamic_wi8_afp32") == []
    assert effect_checks(small, out, None) == []


def test_float16_weights_are_a_change_from_a_float32_reference_but_not_from_a_float16_one(wild):
    """A float16 policy on a float32 model stores its weights as float16 (read through
    DEQUANTIZE): that is the change, not 'nothing changed'; a float16 file compared with
    itself changed nothing."""
    from gate.measure.tflite_tensors import policy_effect

    nosig, fp16 = wild.nosig.read_bytes(), wild.fp16.read_bytes()
    assert not policy_effect(nosig, fp16, "float16").none
    assert policy_effect(fp16, fp16, "dynamic_wi8_afp32").none


def test_qat_plan_leaves_the_layers_that_break_tfmots_transform_float(wild):
    from gate.measure.tfenv import keras, tfmot
    from gate.optimize import qat

    model = keras().models.load_model(wild.qat_break)
    with pytest.raises(ValueError, match="Inputs have incompatible shapes"):
        tfmot().quantization.keras.quantize_model(model)
    scheme, _ = qat.scheme_for([])
    left = qat.plan(model, scheme)
    broken = [f for f in left if "layout transform" in f.reason]
    assert [f.layer for f in broken] == ["branch_a"] and "Inputs have incompatible shapes" in broken[0].reason
    qat.quantize(qat.copy_model(model), scheme, left)        # tfmot's quantize_apply now passes


def test_bisection_finds_every_culprit_and_says_when_none_helps():
    from gate.errors import EXIT_FAIL, OptimizationError
    from gate.optimize.qat_bisect import transform_leaving_float

    order = ["input", "a", "b", "c", "d", "e", "f"]
    classes = {"input": "InputLayer", **{n: "Conv2D" for n in order[1:]}}
    lqm = {n: {} for n in order}
    calls = []

    def apply(m):      # the transform breaks while both "c" and "f" are annotated... or "b" is
        calls.append(set(m))
        if "b" in m or {"c", "f"} <= set(m):
            raise ValueError("Inputs have incompatible shapes. Received shapes (8,) and (12,)")
        return sorted(m)

    result, left = transform_leaving_float(apply, lqm, order, classes)
    assert sorted(n for n, _, _ in left) == ["b", "c"] and "b" not in result and "c" not in result and "f" in result
    assert "Inputs have incompatible shapes" in left[0][2] and len(calls) < 12

    def never(m):
        raise ValueError("always")

    with pytest.raises(OptimizationError) as err:
        transform_leaving_float(never, lqm, order, classes)
    assert err.value.exit_code == EXIT_FAIL and "int8" in err.value.hint and "'a' (Conv2D)" in err.value.message


# -- through `gate check` ------------------------------------------------------------------------

@pytest.mark.parametrize("name,policy,precision,io", [
    ("nosig", "int8", "int8", "int8"),
    ("fp16", "dynamic-range", "dynamic_range", "float32"),
    ("fp16", "int8", "int8", "int8"),
    ("dup", "int8", "int8", "int8"),
])
def test_committed_tflite_kinds_are_quantized(wild, tmp_path, name, policy, precision, io):
    result, report = check(tmp_path, getattr(wild, name), policy, wild.train, wild.eval)
    assert result.exit_code == 0, result.output
    cand_file = (tmp_path / "out" / report["candidate"]["file"]).read_bytes()
    assert report["candidate"]["precision"] == precision and report["candidate"]["io"] == io == _io(cand_file)
    assert report["reference"]["io"] == "float32"
    notes = " ".join(report["notes"])
    assert "no signature: it was given one" in notes
    if name == "fp16":
        assert " were turned back into float32 (their exact values" in notes
    if name == "dup":
        assert "Tensor names repeat in the .tflite ('same')" in notes


def test_dynamic_input_is_resized_to_the_data(wild, tmp_path):
    result, report = check(tmp_path, wild.dynamic, "int8", wild.signal_train, wild.signal_eval)
    assert result.exit_code == 0, result.output
    assert report["model"]["inputs"][0]["shape"] == [None, None]
    assert report["candidate"]["io"] == "int8" and report["candidate"]["evaluation"]["examples"] == 150


def test_a_dynamic_range_policy_that_quantizes_nothing_fails(wild, tmp_path):
    result, report = check(tmp_path, wild.small, "dynamic-range", wild.train, wild.eval)
    assert result.exit_code == 1, result.output
    effect = next(c for c in report["checks"] if c["name"] == "policy.effect")
    assert not effect["passed"] and "fewer than 1024 values" in effect["detail"]
    assert not any("< 1024" in n for n in report["notes"])


def test_old_format_h5_fine_tunes_with_its_string_loss(wild, tmp_path):
    result, report = check(tmp_path, wild.old_h5, "qat-int8", wild.train, wild.eval, steps_epochs=1)
    assert result.exit_code == 0, result.output
    result, report = check(tmp_path / "bad", wild.badloss_h5, "qat-int8", wild.train, wild.eval, steps_epochs=1)
    assert result.exit_code == 2 and report["error"]["field"] == "steps.qat.finetune.loss"
    assert "finetune" in report["error"]["hint"]
    assert any("my_focal_loss" in n for n in report["notes"]) or "my_focal_loss" in report["error"]["message"]


def test_keras_savedmodel_with_a_lambda_loss(wild, tmp_path):
    result, report = check(tmp_path, wild.keras_sm, "int8", wild.train, wild.eval, trust=True)
    assert result.exit_code == 0, result.output
    assert any("loaded without it (compile=False)" in n for n in report["notes"])
    result, report = check(tmp_path / "qat", wild.keras_sm, "qat-int8", wild.train, wild.eval, trust=True,
                           steps_epochs=1)
    assert result.exit_code == 2 and report["error"]["field"] == "steps.qat.finetune.loss"
    policy = {"extends": "qat-int8",
              "steps": [{"qat": {"finetune": {"epochs": 1, "loss": "sparse_categorical_crossentropy"}}}]}
    result, report = check(tmp_path / "loss", wild.keras_sm, policy, wild.train, wild.eval, trust=True)
    assert result.exit_code == 0, result.output


def test_plain_savedmodel_through_its_serving_signature(wild, tmp_path):
    result, report = check(tmp_path, wild.plain_sm, "int8", wild.train, wild.eval, trust=True)
    assert result.exit_code == 0, result.output
    assert report["model"]["format"] == "savedmodel" and report["candidate"]["io"] == "int8"
    assert any("through its signature 'serving_default'" in n for n in report["notes"])
    result, report = check(tmp_path / "qat", wild.plain_sm, "qat-int8", wild.train, wild.eval, trust=True)
    assert result.exit_code == 2 and report["error"]["field"] == "policy.steps"
    assert "plain TensorFlow SavedModel" in report["error"]["message"] and "post-training" in report["error"]["hint"]


def test_a_graph_that_breaks_tfmots_transform_gets_qat(wild, tmp_path):
    result, report = check(tmp_path, wild.qat_break, "qat-int8", wild.train, wild.eval, steps_epochs=1)
    assert result.exit_code == 0, result.output
    left = report["plan"]["steps"][0]["left_float"]
    assert [f["layer"] for f in left if "layout transform" in f["reason"]] == ["branch_a"]


def test_examples_tflite_report_says_int8_io(tmp_path):
    """examples/tflite: static_wi8_ai8 makes int8 io, and report.json says so."""
    root = Path(__file__).resolve().parent.parent / "examples" / "tflite"
    cfg = yaml.safe_load((root / "gate.yml").read_text())
    cfg.update(model=str(root / cfg["model"]), data={k: str(root / v) for k, v in cfg["data"].items()},
               benchmark={"threads": 1, "warmup": 1, "runs": 5})
    (tmp_path / "gate.yml").write_text(yaml.safe_dump(cfg))
    result, report = run_check(tmp_path, tmp_path / "gate.yml", "--in-process")
    assert report["candidate"]["io"] == "int8" and report["reference"]["io"] == "float32", result.output
    assert os.path.getsize(tmp_path / "out" / report["candidate"]["file"]) == report["candidate"]["bytes_raw"]


def test_a_model_tfmot_cannot_transform_fails_with_status_fail(wild, tmp_path):
    """Eight Concatenate([a, b, a]) heads: the bisection leaves MAX_CULPRITS (8) layers float
    and tfmot's transform still fails, so the policy failed on a valid model: OptimizationError,
    exit 1 -- report.json says `fail` (not `error`), with the error, and report.md shows it."""
    from gate.errors import OptimizationError, error_from_dict
    from gate.measure.tfenv import keras
    from gate.optimize.qat_bisect import MAX_CULPRITS
    from gate.run.worker.main import _error

    k = keras()
    L = k.layers
    k.utils.set_random_seed(0)
    i = k.Input((8, 8, 1), name="image")
    heads = []
    for n in range(MAX_CULPRITS):
        a = L.Conv2D(2, 3, padding="same", name=f"branch_a{n}")(i)
        heads.append(L.Concatenate(name=f"concat{n}")([a, L.Conv2D(2, 3, padding="same", name=f"branch_b{n}")(i), a]))
    model = k.Model(i, L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(L.Add()(heads))))
    model.compile("adam", "sparse_categorical_crossentropy")     # fails in planning: never fitted
    model.save(tmp_path / "heads.h5")

    result, report = check(tmp_path / "run", tmp_path / "heads.h5", "qat-int8", wild.train, wild.eval)
    assert result.exit_code == 1, result.output
    assert report["status"] == "fail" and report["exit_code"] == 1
    assert report["error"]["kind"] == "optimization" and "branch_a0" in report["error"]["message"]
    markdown = (tmp_path / "run" / "out" / "report.md").read_text()
    assert markdown.startswith("## ❌ model-gate: fail — the policy could not be applied")
    assert "**optimization**" in markdown
    # the worker process's result and the parent's rebuilt error say the same (the subprocess path)
    err = OptimizationError("qat: the transform fails", field="steps.qat")
    assert _error(err).status == "fail" and error_from_dict(err.to_dict()).report_status == "fail"
    assert error_from_dict({"kind": "policy", "message": "x"}).report_status == "error"
