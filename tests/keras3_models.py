"""Keras 3 model files for the tests, built inside the tests (tiny, a few epochs on digits),
and hostile Keras 3 files written by hand (a config.json and metadata.json in a zip:
nothing is ever loaded to build them). Functions that need Keras 3 take it as an argument."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

KERAS3_METADATA = {"keras_version": "3.15.1", "date_saved": "2026-01-01@00:00:00"}


def digits(n_train: int = 600, n_eval: int = 200):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    idx = np.random.default_rng(0).permutation(len(x))
    tr, ev = idx[:n_train], idx[n_train:n_train + n_eval]
    return x[tr], d.target[tr].astype(np.int64), x[ev], d.target[ev].astype(np.int64), d.images[idx]


def cnn_bn(k3: Any):
    """Sequential Conv2D -> BatchNormalization -> ReLU -> pooling -> Dense, default names."""
    return k3.Sequential([
        k3.Input((8, 8, 1)), k3.layers.Conv2D(8, 3, padding="same"), k3.layers.BatchNormalization(),
        k3.layers.ReLU(), k3.layers.MaxPooling2D(2), k3.layers.Flatten(), k3.layers.Dense(10, activation="softmax")])


def two_io(k3: Any):
    """Inputs named so that they sort differently from their Keras order (zeta before alpha);
    a softmax output and a linear (regression) output."""
    image = k3.Input((8, 8, 1), name="zeta_image")
    stats = k3.Input((16,), name="alpha_stats")
    h = k3.layers.Concatenate()([k3.layers.Flatten()(k3.layers.Conv2D(4, 3, activation="relu")(image)),
                                 k3.layers.Dense(8, activation="relu")(stats)])
    return k3.Model([image, stats], [k3.layers.Dense(10, activation="softmax", name="digit")(h),
                                     k3.layers.Dense(1, name="ink")(h)])


def uint8_images(k3: Any):
    """uint8 pixels in, rescaled inside the model."""
    return k3.Sequential([k3.Input((8, 8, 1), dtype="uint8", name="pixels"), k3.layers.Rescaling(1 / 16.0),
                          k3.layers.Conv2D(8, 3, activation="relu"), k3.layers.Flatten(),
                          k3.layers.Dense(10, activation="softmax")])


def stats_of(images: np.ndarray) -> np.ndarray:
    return np.concatenate([images.mean(axis=2)[..., 0], images.mean(axis=1)[..., 0]], axis=1).astype(np.float32)


def train_and_save(k3: Any, model: Any, x, y, path: Path, *, loss: Any = "sparse_categorical_crossentropy",
                   epochs: int = 6) -> Path:
    k3.utils.set_random_seed(0)
    model.compile(optimizer=k3.optimizers.Adam(1e-2), loss=loss)
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    model.compile(optimizer=k3.optimizers.Adam(1e-2), loss=loss)     # no optimizer state in the file
    model.save(path)
    return path


# --------------------------------------------------------------------------- hostile files

def keras3_file(path: Path, config: dict, metadata: dict | None = None) -> Path:
    """A .keras zip with the given config.json (no weights: the scan refuses before any load)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps(metadata or KERAS3_METADATA))
        zf.writestr("config.json", json.dumps(config))
    return path


def dtype_policy() -> dict:
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}


def dense(name: str = "dense", **overrides) -> dict:
    layer = {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
             "config": {"name": name, "trainable": True, "dtype": dtype_policy(), "units": 2,
                        "activation": "linear", "use_bias": True,
                        "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                               "config": {"seed": None}, "registered_name": None}},
             "build_config": {"input_shape": [None, 4]}}
    layer.update(overrides)
    return layer


def sequential(*layers: dict) -> dict:
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": "sequential", "trainable": True, "dtype": dtype_policy(),
                       "layers": [{"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                                   "config": {"batch_shape": [None, 4], "dtype": "float32", "sparse": False,
                                              "ragged": False, "name": "input_layer", "optional": False}},
                                  *layers],
                       "build_input_shape": [None, 4]}}


def lambda_layer() -> dict:
    return {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
            "config": {"name": "evil", "trainable": True, "dtype": dtype_policy(),
                       "function": {"class_name": "__lambda__", "config": {"code": "4wAAAA==", "defaults": None,
                                                                         "closure": None}},
                       "arguments": {}}}
