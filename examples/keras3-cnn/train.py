"""Train the Keras 3 example: a small CNN on scikit-learn's digits (8x8, 10 classes),
built and saved with Keras 3 (`import keras`, the default Keras since TF 2.16).

Deterministic (fixed seeds, op determinism) and offline: load_digits ships inside
scikit-learn. Writes model.keras, train.npz and eval.npz next to this file.

    python examples/keras3-cnn/train.py
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.pop("TF_USE_LEGACY_KERAS", None)   # Keras 3 itself
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED = 0


def main() -> None:
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]          # (N, 8, 8, 1) in [0, 1]
    x_tr, x_ev, y_tr, y_ev = train_test_split(x, d.target.astype(np.int64), test_size=0.2,
                                              random_state=SEED, stratify=d.target)
    model = keras.Sequential([
        keras.Input(shape=(8, 8, 1), name="image"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv"),
        keras.layers.MaxPooling2D(2, name="pool"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(64, activation="relu", name="dense"),
        keras.layers.Dense(10, activation="softmax", name="classifier"),
    ], name="keras3_cnn")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_tr, y_tr, epochs=30, batch_size=32, shuffle=True, verbose=0)
    _, acc = model.evaluate(x_ev, y_ev, verbose=0)
    # A fresh (unbuilt) optimizer: the file keeps the loss for fine-tuning, not Adam's moments.
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.save(HERE / "model.keras")
    np.savez_compressed(HERE / "train.npz", x=x_tr, y=y_tr)
    np.savez_compressed(HERE / "eval.npz", x=x_ev, y=y_ev)
    print(f"keras {keras.__version__}: eval accuracy {acc:.4f}; params {model.count_params()}")


if __name__ == "__main__":
    main()
