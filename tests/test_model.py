"""Model loading per format, model facts, and clear refusals."""
from __future__ import annotations

import pytest

from gate.errors import ModelError
from gate.measure.convert import reference_spec, to_tflite
from gate.measure.model import load_model


def test_keras_facts(tiny_model, tiny):
    f = tiny_model.facts
    assert f.format == "keras" and f.file_bytes == tiny.keras.stat().st_size
    assert f.params == 8 * 9 + 8 + 6 * 6 * 8 * 10 + 10
    assert f.layers == 3
    assert f.input_shape == (None, 8, 8, 1) and f.n_classes == 10


def test_h5_loads(tiny):
    m = load_model(tiny.h5)
    assert m.facts.format == "h5" and m.facts.params == load_model(tiny.keras).facts.params


def test_savedmodel_directory_loads(tiny_model, tmp_path):
    path = tmp_path / "sm"
    tiny_model.keras.save(path, save_format="tf")
    with pytest.raises(ModelError, match="trust_model_code"):
        load_model(path)  # a SavedModel is a TensorFlow program
    m = load_model(path, trust_model_code=True)
    assert m.facts.format == "savedmodel" and m.facts.n_classes == 10


def test_tflite_is_kept_as_bytes(tiny_model, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(to_tflite(tiny_model.keras, reference_spec()).content)
    m = load_model(path)
    assert m.is_tflite and m.tflite == path.read_bytes()
    assert m.facts.input_shape[1:] == (8, 8, 1) and m.facts.n_classes == 10 and m.facts.layers > 0


@pytest.mark.parametrize("name,content,text", [
    ("m.keras", b"", "file is empty (0 bytes)"),
    ("m.keras", b"\x00" * 64, "extension '.keras' says keras but the content is none of"),
    ("m.h5", b"random bytes", "extension '.h5' says h5 but the content"),
    ("m.tflite", b"", "file is empty"),
    ("m.tflite", b"garbage that is not a flatbuffer", "extension '.tflite' says tflite but"),
    ("m.onnx", b"x", "expected a .keras, .h5, .hdf5 or .tflite file, or a SavedModel directory; received m.onnx"),
])
def test_bad_model_files(tmp_path, name, content, text):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert text in info.value.message and info.value.exit_code == 2


def test_directory_without_saved_model_pb(tmp_path):
    with pytest.raises(ModelError, match="not a SavedModel"):
        load_model(tmp_path)


def test_multi_input_models_load_with_their_names(tmp_path):
    from gate.measure.tfenv import keras

    k = keras()
    a, b = k.Input((2,), name="b_second"), k.Input((2,), name="a_first")
    model = k.Model([a, b], [k.layers.Dense(2, name="head")(k.layers.Concatenate()([a, b])),
                             k.layers.Dense(1, activation="sigmoid", name="gate")(a)])
    model.save(tmp_path / "two.keras")
    facts = load_model(tmp_path / "two.keras").facts
    assert facts.input_names == ["b_second", "a_first"] and facts.output_names == ["head", "gate"]
    assert [o.activation for o in facts.outputs] == ["linear", "sigmoid"]
    assert facts.flavour == "tf_keras"


def test_tflite_facts_by_signature(tiny_model, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(to_tflite(tiny_model.keras, reference_spec()).content)
    facts = load_model(path).facts
    assert facts.input_names == ["image"] and facts.output_names == ["classifier"]
    assert facts.outputs[0].activation == "softmax" and facts.precision == "float" and facts.flavour == "tflite"


def test_tf_keras_zip_loader_matches_load_model(tmp_path):
    """gate.measure.model.load_tf_keras_zip (weights from an extracted file) gives what
    tf_keras' load_model gives: the same weights, BN statistics, compile config and
    optimizer state, on a Conv->BN model trained one epoch; a file with assets falls
    back to load_model."""
    import zipfile

    import numpy as np

    from gate.measure.model import load_tf_keras_zip
    from gate.measure.tfenv import keras

    k = keras()
    k.utils.set_random_seed(0)
    i = k.Input((8, 8, 1))
    x = k.layers.ReLU()(k.layers.BatchNormalization()(k.layers.Conv2D(4, 3)(i)))
    model = k.Model(i, k.layers.Dense(3, activation="softmax")(k.layers.GlobalAveragePooling2D()(x)))
    model.compile(k.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    model.fit(rng.uniform(size=(32, 8, 8, 1)), rng.integers(0, 3, 32), epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    ours, theirs = load_tf_keras_zip(path, k), k.models.load_model(path, compile=True, safe_mode=True)
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights]
    assert all(np.array_equal(a, b) for a, b in zip(ours.get_weights(), theirs.get_weights()))
    assert ours.loss == theirs.loss and ours.optimizer.get_config() == theirs.optimizer.get_config()
    assert all(np.array_equal(a, b) for a, b in zip(ours.optimizer.variables(), theirs.optimizer.variables()))
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("assets/vocab.txt", "a\nb\n")
    again = load_tf_keras_zip(path, k)
    assert all(np.array_equal(a, b) for a, b in zip(again.get_weights(), theirs.get_weights()))
