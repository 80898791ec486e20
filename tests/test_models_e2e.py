"""Models as users commit them, through `gate check`: Keras 3 with BatchNorm and default
names, several inputs and outputs (names that sort differently from the Keras order),
uint8 images, a committed int8 .tflite, LiteRT Quantizer recipes on a Keras model, and
what is refused (tfmot steps on a .tflite, a quantizing policy on a quantized file)."""
from __future__ import annotations

import os
import textwrap

import numpy as np
import pytest
from conftest import run_check, train_samples, write_config

pytestmark = pytest.mark.slow


def cfg(tmp_path, model, train, eval_, policy="int8", thresholds=None, **kw):
    import yaml

    data = {"model": str(model), "data": {"train": str(train), "eval": str(eval_)}, "policy": policy,
            "thresholds": thresholds or {}, "benchmark": {"threads": 1, "warmup": 2, "runs": 10}, **kw}
    path = tmp_path / "gate.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    import keras3_models as km

    x_tr, y_tr, x_ev, y_ev, _ = km.digits()
    d = tmp_path_factory.mktemp("digits")
    np.savez(d / "train.npz", x=x_tr, y=y_tr)
    np.savez(d / "eval.npz", x=x_ev, y=y_ev)
    return d / "train.npz", d / "eval.npz"


def test_keras3_batchnorm_default_names_int8(tmp_path, keras3_files, digits_npz):
    result, report = run_check(tmp_path, cfg(tmp_path, keras3_files.cnn_bn, *digits_npz,
                                             thresholds={"accuracy": {"max_drop": 0.03}}), "--in-process")
    assert result.exit_code == 0, result.output
    assert report["model"]["flavour"] == "keras3" and report["candidate"]["precision"] == "int8"


def test_keras3_h5_loads_and_converts(tmp_path, keras3_files, digits_npz):
    result, report = run_check(tmp_path, cfg(tmp_path, keras3_files.cnn_bn_h5, *digits_npz, policy="dynamic-range"),
                               "--in-process")
    assert result.exit_code == 0, result.output
    assert report["model"]["format"] == "h5" and report["model"]["flavour"] == "keras3"


def test_two_inputs_two_outputs_report_a_metric_per_output(tmp_path, keras3_files):
    thresholds = {"metrics": {"digit/accuracy": {"min": 0.5, "max_drop": 0.05}, "ink/mae": {"max": 0.2},
                              "ink/snr_db": {"min": 10}, "cosine": {"min": 0.9}}}   # cosine: every output
    result, report = run_check(tmp_path, cfg(tmp_path, keras3_files.two_io, keras3_files.two_io_train,
                                             keras3_files.two_io_eval, thresholds=thresholds), "--in-process")
    assert result.exit_code == 0, result.output
    assert [t["name"] for t in report["model"]["inputs"]] == ["zeta_image", "alpha_stats"]
    metrics = report["candidate"]["evaluation"]["metrics"]
    assert {"digit/accuracy", "ink/mae", "digit/snr_db", "ink/snr_db", "digit/top1_agreement"} <= set(metrics)
    assert metrics["digit/accuracy"] > 0.5 and metrics["ink/mae"] < 0.2
    assert report["model"]["tasks"]["digit"]["kind"] == "classifier"
    assert report["model"]["tasks"]["ink"]["kind"] == "regression"
    assert {c["name"] for c in report["checks"]} == {"metrics.digit/accuracy.min", "metrics.digit/accuracy.max_drop",
                                                     "metrics.ink/mae.max", "metrics.ink/snr_db.min",
                                                     "metrics.cosine.min"}
    every = next(c for c in report["checks"] if c["name"] == "metrics.cosine.min")
    assert every["outcome"] == "point" and "judged on each of the 2 outputs" in every["detail"]
    assert "ink/mae" in result.output and "digit/accuracy" in result.output


def test_a_metric_that_fits_no_output_is_exit_2_before_anything_is_measured(tmp_path, keras3_files):
    result, report = run_check(tmp_path, cfg(tmp_path, keras3_files.two_io, keras3_files.two_io_train,
                                             keras3_files.two_io_eval,
                                             thresholds={"metrics": {"binary_accuracy": {"min": 0.5}}}),
                               "--in-process")
    assert result.exit_code == 2, result.output
    assert report["error"]["field"] == "thresholds.metrics.binary_accuracy"
    assert "needs its output named" in report["error"]["message"]
    assert report.get("reference") is None and report.get("candidate") is None   # nothing converted or measured


def test_two_outputs_with_tfmot_steps_through_the_bridge(tmp_path, keras3_files):
    policy = {"steps": [{"prune": {"final_sparsity": 0.5, "finetune": {"epochs": 1}}}],
              "convert": {"quantization": "dynamic"}}
    result, report = run_check(tmp_path, cfg(tmp_path, keras3_files.two_io, keras3_files.two_io_train,
                                             keras3_files.two_io_eval, policy=policy,
                                             thresholds={"metrics": {"ink/mae": {"max": 0.5}}}), "--in-process")
    assert result.exit_code == 0, result.output
    assert report["bridge"]["max_abs_diff"] <= report["bridge"]["tolerance"]
    assert "ink/mae" in report["stages"][1]["metrics"]


def test_uint8_images_int8(tmp_path, keras3_files):
    result, report = run_check(tmp_path, cfg(tmp_path, keras3_files.uint8, keras3_files.uint8_train,
                                             keras3_files.uint8_eval, thresholds={"accuracy": {"max_drop": 0.03}}),
                               "--in-process")
    assert result.exit_code == 0, result.output
    assert report["model"]["inputs"][0]["dtype"] == "uint8" and report["data"]["eval"]["x_dtype"] == "uint8"


def test_litert_recipe_on_a_keras_model_int4(tmp_path, keras3_files, digits_npz):
    policy = {"convert": {"quantizer": "litert", "recipe": "dynamic_wi4_afp32"}}
    result, report = run_check(tmp_path, cfg(tmp_path, keras3_files.cnn_bn, *digits_npz, policy=policy,
                                             thresholds={"metrics": {"top1_agreement": {"min": 0.9}}}), "--in-process")
    assert result.exit_code == 0, result.output
    assert report["candidate"]["quantization"] == "dynamic_wi4_afp32" and report["candidate"]["quantizer"] == "litert"
    assert report["candidate"]["precision"] == "dynamic_range"


def test_committed_int8_tflite_is_labelled_int8_and_compression_does_not_apply(tiny, tiny_model, tmp_path,
                                                                                monkeypatch):
    from gate.config.schema import ConvertSpec

    monkeypatch.setenv("COLUMNS", "200")
    from gate.measure.convert import to_tflite

    path = tmp_path / "int8.tflite"
    path.write_bytes(to_tflite(tiny_model.keras, ConvertSpec(quantization="int8"), train_samples(tiny, 50)).content)
    config = write_config(tmp_path, tiny, model=str(path), policy=None,
                          thresholds={"compression": {"min": 2.0}, "accuracy": {"min": 0.5}})
    result, report = run_check(tmp_path, config, "--in-process")
    assert result.exit_code == 0, result.output
    assert report["reference"]["label"] == "int8.tflite, int8" and report["reference"]["precision"] == "int8"
    compression = next(c for c in report["checks"] if c["name"] == "compression.min")
    assert compression["outcome"] == "not_applicable" and "no float .tflite" in compression["detail"]
    assert "reference (int8.tflite, int8)" in result.output and "float32)" not in result.output
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Reference (int8.tflite, int8)" in md
    # a quantizing policy on it is refused, naming the file and why
    result, report = run_check(tmp_path / "p", write_config(tmp_path, tiny, model=str(path), policy="int8"),
                               "--in-process")
    assert result.exit_code == 2 and report["error"]["field"] == "policy"
    assert "already quantized (int8)" in report["error"]["message"]


def test_tfmot_steps_on_a_tflite_are_refused(tiny, tiny_model, tmp_path):
    from gate.measure.convert import reference_spec, to_tflite

    path = tmp_path / "f.tflite"
    path.write_bytes(to_tflite(tiny_model.keras, reference_spec()).content)
    result, report = run_check(tmp_path, write_config(tmp_path, tiny, model=str(path), policy="prune-int8"),
                               "--in-process")
    assert result.exit_code == 2 and report["error"]["field"] == "policy.steps"
    assert "f.tflite is a .tflite" in report["error"]["message"]


def test_a_regression_without_targets_gets_fidelity_only(tmp_path):
    """No y: label metrics are not judged (and say so), fidelity is."""
    from gate.measure.tfenv import keras3

    k3 = keras3()
    k3.utils.set_random_seed(0)
    model = k3.Sequential([k3.Input((5,), name="f"), k3.layers.Dense(8, activation="relu"), k3.layers.Dense(1)])
    model.compile(loss="mse")
    model.save(tmp_path / "r.keras")
    x = np.random.default_rng(0).normal(size=(120, 5)).astype(np.float32)
    np.savez(tmp_path / "train.npz", x=x)
    np.savez(tmp_path / "eval.npz", x=x[:60])
    thresholds = {"metrics": {"snr_db": {"min": 20}, "mae": {"max": 1}}}
    result, report = run_check(tmp_path, cfg(tmp_path, tmp_path / "r.keras", tmp_path / "train.npz",
                                             tmp_path / "eval.npz", thresholds=thresholds), "--in-process")
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["metrics.snr_db.min"]["passed"]
    assert checks["metrics.mae.max"]["outcome"] == "not_judged" and "no targets" in checks["metrics.mae.max"]["detail"]
    assert result.exit_code == 1


def test_keras3_gru_conversion_error_names_the_layer():
    from gate.errors import ModelError
    from gate.measure.convert import reference_spec, to_tflite
    from gate.measure.tfenv import keras3

    k3 = keras3()
    model = k3.Sequential([k3.Input((6,), dtype="int32"), k3.layers.Embedding(10, 4), k3.layers.GRU(4, name="gru"),
                           k3.layers.Dense(2)])
    with pytest.raises(ModelError) as info:
        to_tflite(model, reference_spec())
    assert "recurrent layer(s) 'gru' (GRU)" in info.value.message and "batch_size=1" in info.value.hint


def test_a_keras3_quantized_model_is_refused_with_what_to_do():
    from gate.errors import ModelError
    from gate.measure.convert import reference_spec, to_tflite
    from gate.measure.tfenv import keras3

    k3 = keras3()
    model = k3.Sequential([k3.Input((16,)), k3.layers.Dense(8, name="d")])
    model.quantize("int8")
    with pytest.raises(ModelError) as info:
        to_tflite(model, reference_spec())
    assert "quantized by Keras 3 (model.quantize())" in info.value.message and "commit the float model" in \
        info.value.hint


def test_one_hot_labels_fine_tune_a_categorical_loss(tmp_path, tiny):
    """One-hot targets are read as class ids; a categorical crossentropy fine-tunes as its sparse twin."""
    from gate.measure.tfenv import keras3

    k3 = keras3()
    k3.utils.set_random_seed(0)
    model = k3.Sequential([k3.Input((8, 8, 1)), k3.layers.Flatten(), k3.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.fit(tiny.x_train, np.eye(10)[tiny.y_train], epochs=2, verbose=0)
    model.save(tmp_path / "oh.keras")
    np.savez(tmp_path / "train.npz", x=tiny.x_train, y=np.eye(10)[tiny.y_train])
    np.savez(tmp_path / "eval.npz", x=tiny.x_eval, y=np.eye(10)[tiny.y_eval])
    policy = {"steps": [{"qat": {"finetune": {"epochs": 1}}}], "convert": {"quantization": "int8"}}
    result, report = run_check(tmp_path, cfg(tmp_path, tmp_path / "oh.keras", tmp_path / "train.npz",
                                             tmp_path / "eval.npz", policy=policy,
                                             thresholds={"accuracy": {"max_drop": 0.1}}), "--in-process")
    assert result.exit_code == 0, result.output


def test_a_converter_crash_says_what_to_try(tmp_path, tiny, monkeypatch):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent("""
        import os, signal
        import gate.measure.convert as c
        def crash(*a, **k):
            os.kill(os.getpid(), signal.SIGSEGV)
        c._convert = crash
    """))
    monkeypatch.setenv("PYTHONPATH", f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result, report = run_check(tmp_path, write_config(tmp_path, tiny))
    assert result.exit_code == 2 and "crashed with SIGSEGV while converting" in report["error"]["message"]
    assert "dynamic-range" in report["error"]["hint"]


def test_mobilenetv2_keras3_int8(tmp_path):
    """A real architecture, Keras 3: MobileNetV2(alpha=0.35, weights=None) at 32x32, int8."""
    import keras3_models as km

    from gate.measure.tfenv import keras3

    k3 = keras3()
    k3.utils.set_random_seed(0)
    model = k3.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10)
    x_tr, y_tr, x_ev, y_ev, _ = km.digits(n_train=120, n_eval=40)

    def big(x):
        return np.repeat(np.kron(x[..., 0], np.ones((4, 4), np.float32))[..., None], 3, axis=-1)

    model.compile(loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "mnv2.keras")
    np.savez(tmp_path / "train.npz", x=big(x_tr), y=y_tr)
    np.savez(tmp_path / "eval.npz", x=big(x_ev), y=y_ev)
    policy = {"extends": "int8", "convert": {"representative_samples": 50}}
    config = cfg(tmp_path, tmp_path / "mnv2.keras", tmp_path / "train.npz", tmp_path / "eval.npz", policy=policy,
                 thresholds={"compression": {"min": 2.5}, "metrics": {"cosine": {"min": 0.5}}})
    result, report = run_check(tmp_path, config, "--in-process")
    assert result.exit_code == 0, result.output
    assert report["candidate"]["precision"] == "int8" and report["model"]["layers"] > 100
