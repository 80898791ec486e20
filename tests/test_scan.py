"""gate.scan: static inspection of model files, with hostile models built in the tests."""
from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

import hostile_models as hm  # noqa: E402
import pytest  # noqa: E402

from gate.errors import EXIT_BAD_INPUT, ModelError  # noqa: E402
from gate.scan import ScanLimits, ScanResult, scan_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def K():
    return pytest.importorskip("tf_keras")


@pytest.fixture(scope="module")
def models(K, tmp_path_factory) -> dict[str, Path]:
    """Every tf_keras-built file the tests need, built once for the module."""
    d = tmp_path_factory.mktemp("models")
    out: dict[str, Path] = {"dir": d}

    def save(name: str, model, exts=("keras", "h5")) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "HDF5 is legacy" UserWarning
            for ext in exts:
                out[f"{name}.{ext}"] = d / f"{name}.{ext}"
                model.save(out[f"{name}.{ext}"])

    seq = K.Sequential([K.Input((8,)), K.layers.Dense(16, activation="relu"),
                        K.layers.Dropout(0.1), K.layers.Dense(3, activation="softmax")])
    seq.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    save("seq", seq)
    seq.save_weights(d / "weights_only.h5")
    out["weights_only.h5"] = d / "weights_only.h5"

    save("cnn", _functional_cnn(K))
    save("rnn", _rnn(K))

    mobilenet = K.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(96, 96, 3))
    save("mobilenet", mobilenet)
    out["mobilenet_n_layers"] = len(mobilenet.layers)  # type: ignore[assignment]

    out["canary"] = d / "canary.txt"
    save("lambda", hm.lambda_model(K, out["canary"]))
    save("nested_lambda", hm.nested_lambda_model(K, out["canary"]))
    save("wrapped_lambda", hm.wrapped_lambda_model(K, out["canary"]), exts=("keras",))

    import tensorflow as tf
    out["seq.tflite"] = d / "seq.tflite"
    out["seq.tflite"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(seq).convert())
    assert not out["canary"].exists()
    return out


def _functional_cnn(K):
    L = K.layers
    inp = K.Input((32, 32, 3))
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.ZeroPadding2D(1)(x)
    x = L.Conv2D(8, 3, strides=2, kernel_regularizer=K.regularizers.l2(1e-4))(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    a = L.DepthwiseConv2D(3, padding="same")(x)
    b = L.SeparableConv2D(8, 3, padding="same")(x)
    x = L.Add()([a, b])
    x = L.Multiply()([x, L.Activation("sigmoid")(x)])
    x = L.Concatenate()([L.MaxPooling2D()(x), L.AveragePooling2D()(x)])
    x = L.LayerNormalization()(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Reshape((4, 4))(x)
    x = L.Flatten()(x)
    x = L.Dropout(0.2)(x)
    out = L.Softmax()(L.Dense(4)(x))
    return K.Model(inp, out, name="cnn")


def _rnn(K):
    L = K.layers
    return K.Sequential([K.Input((10,), dtype="int32"), L.Embedding(50, 8),
                         L.Bidirectional(L.GRU(4, return_sequences=True)),
                         L.LSTM(4), L.Dense(2)])


def _refused(path, match: str, **kwargs) -> ModelError:
    with pytest.raises(ModelError, match=match) as info:
        scan_model(path, **kwargs)
    return info.value


# --------------------------------------------------------------------------- good models

@pytest.mark.parametrize("name", ["seq.keras", "seq.h5", "cnn.keras", "cnn.h5", "rnn.keras",
                                  "rnn.h5"])
def test_small_models_pass(models, name):
    result = scan_model(models[name])
    assert isinstance(result, ScanResult)
    assert result.format == name.rsplit(".", 1)[1]
    assert result.file_bytes == models[name].stat().st_size
    assert result.n_layers > 0
    assert list(result.layer_classes) == sorted(set(result.layer_classes))
    assert "saved by Keras 2.21.0" in result.notes


def test_functional_cnn_classes(models):
    result = scan_model(models["cnn.keras"])
    for cls in ("Functional", "InputLayer", "Rescaling", "DepthwiseConv2D", "SeparableConv2D",
                "Add", "Multiply", "Concatenate", "LayerNormalization", "Softmax"):
        assert cls in result.layer_classes


def test_bidirectional_layers_are_counted(models):
    result = scan_model(models["rnn.keras"])
    assert {"Bidirectional", "GRU", "LSTM", "Embedding"} <= set(result.layer_classes)


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_mobilenet_v2_passes(models, ext):
    result = scan_model(models[f"mobilenet.{ext}"])
    assert result.format == ext
    assert result.n_layers == models["mobilenet_n_layers"]
    assert {"Functional", "DepthwiseConv2D", "ReLU", "ZeroPadding2D"} <= set(
        result.layer_classes)


@pytest.fixture(scope="module")
def tfmot_models(K, tmp_path_factory) -> dict[str, Path]:
    tfmot = pytest.importorskip("tensorflow_model_optimization")
    d = tmp_path_factory.mktemp("tfmot")

    def base():
        return K.Sequential([K.Input((8, 8, 3)), K.layers.Conv2D(4, 3),
                             K.layers.BatchNormalization(), K.layers.ReLU(),
                             K.layers.Flatten(), K.layers.Dense(3)])

    built = {"prune": tfmot.sparsity.keras.prune_low_magnitude(base()),
             "qat": tfmot.quantization.keras.quantize_model(base())}
    out = {}
    with warnings.catch_warnings(), tfmot.quantization.keras.quantize_scope():
        warnings.simplefilter("ignore")
        for name, model in built.items():
            for ext in ("keras", "h5"):
                out[f"{name}.{ext}"] = d / f"{name}.{ext}"
                model.save(out[f"{name}.{ext}"])
    return out


@pytest.mark.parametrize("name, wrappers", [
    ("prune.keras", {"PruneLowMagnitude"}), ("prune.h5", {"PruneLowMagnitude"}),
    ("qat.keras", {"QuantizeLayer", "QuantizeWrapperV2"}),
    ("qat.h5", {"QuantizeLayer", "QuantizeWrapperV2"}),
])
def test_tfmot_wrapped_models_pass(tfmot_models, name, wrappers):
    result = scan_model(tfmot_models[name])
    assert wrappers <= set(result.layer_classes)
    assert {"Conv2D", "Dense"} <= set(result.layer_classes)   # the wrapped layers


def test_tflite_passes(models):
    result = scan_model(models["seq.tflite"])
    assert result.format == "tflite"
    assert result.layer_classes == () and result.n_layers == 0
    assert "1 subgraph(s)" in result.notes[0]


def test_scan_never_imports_tensorflow(models):
    code = ("import sys; from gate.scan import scan_model\n"
            f"for p in {[str(models[n]) for n in ('cnn.keras', 'cnn.h5', 'seq.tflite')]!r}:\n"
            "    scan_model(p)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization')]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# --------------------------------------------------------------------------- Lambda

@pytest.mark.parametrize("name, where", [
    ("lambda.keras", "config.layers[2]"),
    ("lambda.h5", "config.layers[2]"),
    ("nested_lambda.keras", "config.layers[2].config.layers[2]"),
    ("nested_lambda.h5", "config.layers[2].config.layers[2]"),
    ("wrapped_lambda.keras", "config.layers[1].config.layer"),
])
def test_lambda_is_refused_without_running_it(models, name, where):
    err = _refused(models[name], r"layer 'evil' \(class Lambda\)")
    assert f"at {where} is not allowed" in err.message
    assert "arbitrary Python code" in err.message
    assert err.file == str(models[name])
    assert err.exit_code == EXIT_BAD_INPUT
    assert "trust_model_code" in err.hint
    assert not models["canary"].exists()


def test_lambda_allowed_with_trust_model_code(models):
    result = scan_model(models["lambda.keras"], trust_model_code=True)
    assert "Lambda" in result.layer_classes
    assert any("Lambda" in n and "trust_model_code" in n for n in result.notes)
    assert not models["canary"].exists()


def test_lambda_fixture_really_runs_code_when_loaded(K, tmp_path):
    """Proves the hostile fixture is live: a plain tf_keras load writes the canary."""
    canary = tmp_path / "canary.txt"
    path = tmp_path / "proof.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hm.lambda_model(K, canary).save(path)
    assert not canary.exists()
    _refused(path, "Lambda")
    assert not canary.exists()
    K.models.load_model(path, compile=False)
    assert canary.read_text() == "pwned"


# --------------------------------------------------------------------------- edited configs

POPEN = {"module": "os", "class_name": "function", "config": "system", "registered_name": None}
CUSTOM_FN = {"module": "builtins", "class_name": "function", "config": "myact",
             "registered_name": "function"}
LAMBDA_OBJ = {"class_name": "__lambda__", "config": {"value": ["4wEAAAAA", None, None]}}


def _add_key(key):
    def edit(config):
        hm.layer(config, 1)["config"][key] = "anything"
    return edit


def _tfop(function):
    def edit(config):
        target = hm.layer(config, 1)
        target.update(class_name="TFOpLambda", module="tf_keras.src.layers.core.tf_op_layer",
                      registered_name="TFOpLambda")
        target["config"] = {"name": "tf.io.write_file", "function": function}
    return edit


EDITS = {
    "dotted class_name": (hm.set_class(1, "subprocess.Popen", module=None),
                          r"'subprocess\.Popen' is not a Keras class name"),
    "dotted with module": (hm.set_class(1, "subprocess.Popen", module="subprocess"),
                           r"'subprocess\.Popen' is not a Keras class name"),
    "foreign module": (hm.set_class(1, "Dense", module="subprocess"),
                       r"module 'subprocess' is outside"),
    "module prefix trick": (hm.set_class(1, "Dense", module="kerasevil.layers"),
                            r"module 'kerasevil\.layers' is outside"),
    "registered_name": (hm.set_class(1, "Dense", registered_name="evil>Popen"),
                        r"registered_name 'evil>Popen'"),
    "custom class": (hm.set_class(1, "MyLayer", module="mypkg.layers"),
                     r"'MyLayer' is not a built-in"),
    "custom package class": (hm.set_class(1, "mypkg>Dense", module=None),
                             r"'mypkg>Dense' is not a Keras class name"),
    "TFSMLayer": (hm.set_class(1, "TFSMLayer"), r"SavedModel from a path"),
    "TorchModuleWrapper": (hm.set_class(1, "TorchModuleWrapper"), r"unpickles"),
    "os.system activation": (hm.set_activation(1, POPEN), r"module 'os' is outside"),
    "custom function": (hm.set_activation(1, CUSTOM_FN), r"function reference 'myact'"),
    "__lambda__": (hm.set_activation(1, LAMBDA_OBJ), r"serialized Python lambda"),
    "function key": (_add_key("function"), r"key 'function' at config\.layers\[1\]"),
    "function_type key": (_add_key("function_type"), r"key 'function_type'"),
    "__python_function__ key": (_add_key("__python_function__"),
                                r"key '__python_function__'"),
    "TFOpLambda": (_tfop("io.write_file"),
                   r"class TFOpLambda.*this one calls tf\.io\.write_file"),
    "deep nesting": (hm.nest_lists(1, 200), r"deeper than 64 levels"),
}
TRUSTED_EDITS = {"__lambda__", "function key", "function_type key", "__python_function__ key",
                 "TFOpLambda"}


@pytest.mark.parametrize("case", list(EDITS))
def test_edited_config_is_refused(models, tmp_path, case):
    edit, match = EDITS[case]
    path = hm.rewrite_keras(models["seq.keras"], tmp_path / "edited.keras", edit_config=edit)
    err = _refused(path, match)
    assert err.field == "config.json"


@pytest.mark.parametrize("case", list(EDITS))
def test_trust_model_code_only_relaxes_code_carriers(models, tmp_path, case):
    edit, match = EDITS[case]
    path = hm.rewrite_keras(models["seq.keras"], tmp_path / "edited.keras", edit_config=edit)
    if case in TRUSTED_EDITS:
        scan_model(path, trust_model_code=True)
    else:
        _refused(path, match, trust_model_code=True)


def test_lambda_in_bidirectional_backward_layer(models, tmp_path):
    def edit(config):
        bidi = hm.layer(config, 2)
        assert bidi["class_name"] == "Bidirectional"
        bidi["config"]["backward_layer"] = {
            "module": "keras.layers", "class_name": "Lambda", "registered_name": None,
            "config": {"name": "evil", "function": ["4wEAAAAA", None, None],
                       "function_type": "lambda", "module": "__main__"}}
    path = hm.rewrite_keras(models["rnn.keras"], tmp_path / "bidi.keras", edit_config=edit)
    err = _refused(path, r"layer 'evil' \(class Lambda\)")
    assert "config.layers[2].config.backward_layer" in err.message


def test_h5_training_config_is_walked(models, tmp_path):
    import h5py
    path = hm.copy_file(models["seq.h5"], tmp_path / "seq.h5")
    with h5py.File(path, "a") as f:
        f.attrs["training_config"] = ('{"loss": {"class_name": "function", "module": "os", '
                                      '"config": "system"}}')
    _refused(path, r"module 'os' is outside")


def test_h5_model_config_with_dotted_class(models, tmp_path):
    import h5py
    path = hm.copy_file(models["seq.h5"], tmp_path / "seq.h5")
    with h5py.File(path, "a") as f:
        text = f.attrs["model_config"]
        text = text.decode() if isinstance(text, bytes) else text
        f.attrs["model_config"] = text.replace('"class_name": "Dropout"',
                                               '"class_name": "subprocess.Popen"')
    err = _refused(path, r"subprocess\.Popen")
    assert err.field == "model_config"


# --------------------------------------------------------------------------- zip structure

def test_zip_bomb_is_refused_before_extraction(models, tmp_path):
    path = hm.write_zip_bomb(models["seq.keras"], tmp_path / "bomb.keras", mib=64)
    assert path.stat().st_size < 2 * 1024 * 1024   # the test itself stays small on disk
    _refused(path, r"assets/bomb\.bin' expands \d+x .*zip bomb")


def test_total_uncompressed_limit(models):
    _refused(models["seq.keras"], r"expands to more than 1000 bytes",
             limits=ScanLimits(max_uncompressed_bytes=1000))


def test_member_count_limit(models):
    _refused(models["seq.keras"], r"3 members, over the limit of 2",
             limits=ScanLimits(max_members=2))


def test_config_size_limit(models):
    _refused(models["seq.keras"], r"config\.json is \d+ bytes, over the 100-byte limit",
             limits=ScanLimits(max_config_bytes=100))


def test_deflated_keras_passes(models, tmp_path):
    path = hm.rewrite_keras(models["cnn.keras"], tmp_path / "deflated.keras",
                            compression=zipfile.ZIP_DEFLATED)
    assert scan_model(path).layer_classes == scan_model(models["cnn.keras"]).layer_classes


def test_h5_config_size_limit(models):
    _refused(models["seq.h5"], r"attribute model_config is over the 100-byte limit",
             limits=ScanLimits(max_config_bytes=100))


def test_depth_limit_is_configurable(models):
    _refused(models["seq.keras"], r"deeper than 3 levels", limits=ScanLimits(max_depth=3))


@pytest.mark.parametrize("name", ["../evil", "assets/../../evil", "/etc/evil",
                                  "C:\\evil", "assets\\..\\..\\evil"])
def test_traversal_member_names(models, tmp_path, name):
    path = hm.rewrite_keras(models["seq.keras"], tmp_path / "trav.keras",
                            extra=[(name, b"owned")])
    _refused(path, r"path traversal")


def test_symlink_member(models, tmp_path):
    path = hm.rewrite_keras(models["seq.keras"], tmp_path / "link.keras",
                            extra=[(hm.symlink_member("assets/passwd"), b"/etc/passwd")])
    _refused(path, r"'assets/passwd' is a symbolic link")


def test_duplicate_member(models, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # zipfile warns about the duplicate name
        path = hm.rewrite_keras(models["seq.keras"], tmp_path / "dup.keras",
                                extra=[("config.json", b"{}")])
    _refused(path, r"'config\.json' appears twice")


def test_missing_config_json(tmp_path):
    path = hm.write_keras_zip(tmp_path / "m.keras", {"metadata.json": b"{}"})
    _refused(path, r"no config\.json")


@pytest.mark.parametrize("data, match", [(b"{not json", r"not valid JSON"),
                                         (b"\xff\xfe", r"not valid JSON"),
                                         (b"[1, 2]", r"does not describe a Keras object"),
                                         (b"[" * 100_000, r"nested too deeply|not valid")])
def test_bad_config_json(models, tmp_path, data, match):
    path = hm.rewrite_keras(models["seq.keras"], tmp_path / "bad.keras",
                            replace={"config.json": data})
    _refused(path, match)


def test_missing_optional_members_are_noted(models, tmp_path):
    with zipfile.ZipFile(models["seq.keras"]) as zf:
        config = zf.read("config.json")
    path = hm.write_keras_zip(tmp_path / "bare.keras", {"config.json": config})
    result = scan_model(path)
    assert "archive has no metadata.json" in result.notes
    assert "archive has no model.weights.h5" in result.notes


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_external_link_inside_keras_weights(models, tmp_path, compression):
    weights = hm.h5_bytes_with_external_link(tmp_path / "secret.h5", tmp_path / "w.h5")
    path = hm.rewrite_keras(models["seq.keras"], tmp_path / "ext.keras",
                            replace={"model.weights.h5": weights}, compression=compression)
    err = _refused(path, r"external link at /layers/evil")
    assert err.file.endswith("!model.weights.h5")


# --------------------------------------------------------------------------- HDF5 structure

def test_h5_external_link(models, tmp_path):
    path = hm.copy_file(models["seq.h5"], tmp_path / "ext.h5")
    canary = tmp_path / "canary.h5"
    hm.add_external_link(path, canary)
    before = canary.stat().st_mtime_ns
    err = _refused(path, r"external link at /model_weights/evil points to")
    assert str(canary) in err.message
    assert canary.stat().st_mtime_ns == before


def test_h5_soft_link(models, tmp_path):
    path = hm.copy_file(models["seq.h5"], tmp_path / "soft.h5")
    hm.add_soft_link(path)
    _refused(path, r"soft link at /model_weights/alias")


def test_h5_external_dataset_storage(models, tmp_path):
    path = hm.copy_file(models["seq.h5"], tmp_path / "extds.h5")
    hm.add_external_dataset(path, tmp_path / "raw.bin")
    _refused(path, r"stores its data in external file")


def test_h5_virtual_dataset(models, tmp_path):
    path = hm.copy_file(models["seq.h5"], tmp_path / "vds.h5")
    hm.add_virtual_dataset(path, tmp_path / "source.h5")
    _refused(path, r"virtual dataset")


def test_h5_weights_only(models):
    err = _refused(models["weights_only.h5"], r"no model_config attribute: weights-only file")
    assert "model.save" in err.hint


# --------------------------------------------------------------------------- formats

EXTS = [".keras", ".h5", ".hdf5", ".tflite"]


@pytest.mark.parametrize("ext", EXTS)
def test_empty_file(tmp_path, ext):
    path = tmp_path / f"empty{ext}"
    path.write_bytes(b"")
    _refused(path, r"file is empty")


@pytest.mark.parametrize("ext", EXTS)
def test_random_bytes(tmp_path, ext):
    path = hm.random_file(tmp_path / f"random{ext}")
    _refused(path, r"but the content is none of zip, HDF5 or TFLite")


@pytest.mark.parametrize("name", ["model.bin", "model.pt", "model.pkl", "model"])
def test_unknown_extension(tmp_path, name):
    path = hm.random_file(tmp_path / name)
    _refused(path, r"unknown model extension")


@pytest.mark.parametrize("src, dst, match", [
    ("seq.h5", "x.keras", r"extension '\.keras' says keras but the content is HDF5"),
    ("seq.keras", "x.h5", r"extension '\.h5' says h5 but the content is a zip archive"),
    ("seq.tflite", "x.keras", r"content is a TFLite flatbuffer"),
    ("seq.keras", "x.tflite", r"content is a zip archive"),
])
def test_content_must_match_extension(models, tmp_path, src, dst, match):
    path = hm.copy_file(models[src], tmp_path / dst)
    _refused(path, match)


@pytest.mark.parametrize("cut", [8, 31, 0.5, -4])
def test_truncated_tflite(models, tmp_path, cut):
    size = models["seq.tflite"].stat().st_size
    n = int(size * cut) if isinstance(cut, float) else (cut if cut > 0 else size + cut)
    path = hm.truncated(models["seq.tflite"], tmp_path / "cut.tflite", n)
    _refused(path, r"truncated")


def test_tflite_wrong_identifier(models, tmp_path):
    data = bytearray(models["seq.tflite"].read_bytes())
    data[4:8] = b"TFL2"
    path = tmp_path / "old.tflite"
    path.write_bytes(bytes(data))
    _refused(path, r"content is none of")


def test_file_size_limit(models):
    _refused(models["seq.tflite"], r"over the 100-byte limit",
             limits=ScanLimits(max_file_bytes=100))


def test_missing_file(tmp_path):
    _refused(tmp_path / "nope.keras", r"does not exist")


def test_fifo_is_not_opened(tmp_path):
    path = tmp_path / "pipe.keras"
    os.mkfifo(path)
    _refused(path, r"not a regular file")


@pytest.mark.parametrize("name", ["seq.keras", "seq.h5", "seq.tflite"])
def test_damaged_files_only_raise_model_error(models, tmp_path, name):
    """Truncations and byte flips: refused or accepted, never an unhandled exception."""
    import random
    rng = random.Random(name)
    data = models[name].read_bytes()
    path = tmp_path / f"damaged{models[name].suffix}"
    for trial in range(40):
        damaged = bytearray(data[:rng.randrange(1, len(data))] if trial % 2 else data)
        for _ in range(rng.randrange(0, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path.write_bytes(bytes(damaged))
        try:
            scan_model(path)
        except ModelError:
            pass


# --------------------------------------------------------------------------- SavedModel

def test_savedmodel_needs_trust(tmp_path):
    path = hm.make_savedmodel_dir(tmp_path / "sm")
    err = _refused(path, r"a SavedModel is a TensorFlow program; set trust_model_code in "
                         r"the base branch's config to load it")
    assert err.file == str(path)


def test_savedmodel_with_trust(tmp_path):
    path = hm.make_savedmodel_dir(tmp_path / "sm")
    for target in (path, path / "saved_model.pb"):
        result = scan_model(target, trust_model_code=True)
        assert result.format == "savedmodel"
        assert result.file_bytes == 32 + 8
        assert result.layer_classes == ()


def test_directory_without_saved_model_pb(tmp_path):
    _refused(tmp_path, r"not a SavedModel")
