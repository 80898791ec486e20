"""Keras 3 models, first class: scanned as data against exact (module, class) pairs, loaded
with Keras 3's safe_mode, bridged to tf_keras for tfmot and checked, refused with messages
that say "Keras 3" when they carry code."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import keras3_models as km
import numpy as np
import pytest

from gate.errors import ModelError
from gate.scan import scan_model
from gate.scan.keras3_allowlist import KERAS3_CLASSES, KERAS_VERSION

ROOT = Path(__file__).resolve().parent.parent


def config_of(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("config.json"))


# -- scan ----------------------------------------------------------------------------------

def test_keras3_files_pass_the_scan_and_say_their_flavour(keras3_files, tiny):
    for path in (keras3_files.cnn_bn, keras3_files.cnn_bn_h5, keras3_files.two_io, keras3_files.uint8):
        result = scan_model(path)
        assert result.flavour == "keras3" and result.n_layers > 0, path
    assert "BatchNormalization" in scan_model(keras3_files.cnn_bn).layer_classes
    assert scan_model(tiny.keras).flavour == "tf_keras" and scan_model(tiny.h5).flavour == "tf_keras"


def test_a_handwritten_builtin_file_passes(tmp_path):
    assert scan_model(km.keras3_file(tmp_path / "ok.keras", km.sequential(km.dense()))).flavour == "keras3"


HOSTILE = {
    "lambda": (lambda: km.sequential(km.lambda_layer()), "Lambda layers run arbitrary Python code"),
    "custom class": (lambda: km.sequential(km.dense(module=None, class_name="Scale")), "defined in the saving script"),
    "module outside keras": (lambda: km.sequential(km.dense(module="evilpkg.layers")), "module 'evilpkg.layers'"),
    "module os": (lambda: km.sequential(km.dense(module="os", class_name="system")), "module 'os'"),
    "registered custom object": (lambda: km.sequential(km.dense(registered_name="myproj>Dense")), "myproj>Dense"),
    "keras module, not a built-in": (lambda: km.sequential(km.dense(module="keras.src.saving.serialization_lib",
                                                                    class_name="ObjectSharingScope")),
                                     "serialization_lib"),
    "TFSMLayer": (lambda: km.sequential(km.dense(class_name="TFSMLayer")), "SavedModel"),
    "function from os": (lambda: km.sequential(km.dense(config={"name": "d", "activation": {
        "module": "os", "class_name": "function", "config": "system", "registered_name": "system"}})), "os"),
    "dtype policy from elsewhere": (lambda: km.sequential(km.dense(config={"name": "d", "dtype": {
        "module": "evil", "class_name": "DTypePolicy", "config": {"name": "float32"}}})), "module 'evil'"),
    "serialized lambda": (lambda: km.sequential(km.dense(config={"name": "d", "activation": {
        "class_name": "__lambda__", "config": {"code": "AA=="}}})), "lambda"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_keras3_files_are_refused_as_keras3(tmp_path, case):
    build, words = HOSTILE[case]
    path = km.keras3_file(tmp_path / "m.keras", build())
    with pytest.raises(ModelError) as info:
        scan_model(path)
    assert info.value.message.startswith("Keras 3 file:"), info.value.message
    assert words in info.value.message + (info.value.hint or "")
    assert info.value.field == "config.json" and info.value.exit_code == 2


def test_a_keras3_layer_refused_in_the_h5_dialect_says_keras3(tmp_path, keras3_files):
    import h5py

    path = tmp_path / "m.h5"
    path.write_bytes(keras3_files.cnn_bn_h5.read_bytes())
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][1]["class_name"] = "Lambda"
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(ModelError, match="Keras 3 file: .*Lambda"):
        scan_model(path)


def test_a_forged_version_is_refused(tmp_path, keras3_files):
    path = km.keras3_file(tmp_path / "m.keras", config_of(keras3_files.cnn_bn), {"keras_version": "2.21.0"})
    with pytest.raises(ModelError, match="saved by Keras 2.21.0, but its config is written in Keras 3"):
        scan_model(path)


def test_the_allowlist_matches_the_generator():
    """The committed table is what scripts/gen_keras3_allowlist.py writes for the installed
    Keras (run it and commit the result when the keras pin moves)."""
    import keras

    if keras.__version__ != KERAS_VERSION:
        for module, names in KERAS3_CLASSES.items():
            if module.startswith("keras.src"):
                continue
            namespace = __import__("importlib").import_module(module)
            assert all(hasattr(namespace, n) for n in names), module
        pytest.skip(f"table made for keras {KERAS_VERSION}, installed {keras.__version__}: classes checked only")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_keras3_allowlist.py"), "--print"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == (ROOT / "gate" / "scan" / "keras3_allowlist.py").read_text(encoding="utf-8")


# -- loading, bridge -----------------------------------------------------------------------

def test_keras3_model_loads_with_its_names(keras3_files):
    from gate.measure.model import load_model

    m = load_model(keras3_files.two_io)
    assert m.is_keras3 and m.facts.flavour == "keras3"
    assert m.facts.input_names == ["zeta_image", "alpha_stats"] and m.facts.output_names == ["digit", "ink"]
    assert [o.activation for o in m.facts.outputs] == ["softmax", "linear"]
    assert load_model(keras3_files.cnn_bn_h5).is_keras3


@pytest.mark.parametrize("name", ["cnn_bn", "two_io", "uint8"])
def test_bridge_gives_the_same_outputs(keras3_files, name):
    from gate.measure.bridge import BRIDGE_MAX_DIFF, compare_outputs, to_tf_keras
    from gate.measure.data import bind, load_split
    from gate.measure.evaluate import run_keras
    from gate.measure.model import load_model
    from gate.measure.tfenv import keras

    m = load_model(getattr(keras3_files, name))
    tfk, _ = to_tf_keras(m.keras)
    assert isinstance(tfk, keras().Model) and tfk.count_params() == m.keras.count_params()
    data = {"two_io": keras3_files.two_io_eval, "uint8": keras3_files.uint8_eval}.get(name)
    if data is None:
        x = km.digits()[2][:64]
        np.savez(keras3_files.dir / "cnn_eval.npz", x=x)
        data = keras3_files.dir / "cnn_eval.npz"
    split = bind(load_split(data, "eval"), m.facts)
    check = compare_outputs(run_keras(m.keras, split, 64), run_keras(tfk, split, 64), split.n)
    assert check.max_abs_diff <= BRIDGE_MAX_DIFF and check.examples == split.n


def test_bridge_catches_a_wrong_weight(keras3_files):
    from gate.measure.bridge import BridgeError, compare_outputs, to_tf_keras
    from gate.measure.model import load_model

    m = load_model(keras3_files.cnn_bn)
    tfk, _ = to_tf_keras(m.keras)
    w = tfk.layers[-1].get_weights()
    tfk.layers[-1].set_weights([w[0] * 1.01, w[1]])
    x = km.digits()[2][:32]
    with pytest.raises(BridgeError, match="differs from the Keras 3 model"):
        compare_outputs({"o": m.keras.predict(x, verbose=0)}, {"o": tfk.predict(x, verbose=0)}, 32)


def _k3_model(kind: str):
    from gate.measure.tfenv import keras3

    k3 = keras3()
    inp = k3.Input((4,), name="x")
    if kind == "ops":
        return k3.Model(inp, k3.layers.Dense(2)(k3.ops.mean(inp, axis=-1, keepdims=True) / 16.0))
    if kind == "rms":
        return k3.Model(inp, k3.layers.Dense(2)(k3.layers.RMSNormalization()(inp)))
    if kind == "lora":
        return k3.Model(inp, k3.layers.Dense(3, lora_rank=2)(inp))
    m = k3.Model(inp, k3.layers.Dense(8)(inp))
    m.quantize("int8")
    return m


@pytest.mark.parametrize("kind,words", [
    ("ops", "is a keras.ops call"), ("rms", "class RMSNormalization.*tf_keras has no layer"),
    ("lora", "lora_rank"), ("quantized", "QuantizedDTypePolicy")])
def test_bridge_names_what_it_cannot_map(kind, words):
    from gate.measure.bridge import BridgeError, to_tf_keras

    with pytest.raises(BridgeError, match=words) as info:
        to_tf_keras(_k3_model(kind))
    assert info.value.field == "policy.steps" and "post-training policy" in info.value.hint


def test_loss_of_a_keras3_model_is_read_for_fine_tuning(keras3_files):
    from gate.measure.model import load_model
    from gate.optimize.finetune import CompileInfo

    info = CompileInfo.of(load_model(keras3_files.two_io).keras)
    assert info.loss == {"digit": "sparse_categorical_crossentropy", "ink": "mse"} and info.optimizer == "adam"


def test_keras3_config_is_not_mutated_by_the_bridge(keras3_files):
    from gate.measure.bridge import translate_config

    config = config_of(keras3_files.two_io)
    before = copy.deepcopy(config)
    translated = translate_config(config)
    assert config == before and translated["class_name"] == "Functional"
