"""Train the bundled example: a small CNN on scikit-learn's digits (8x8, 10 classes).

Deterministic (fixed seeds, op determinism) and offline: load_digits ships inside
scikit-learn. Writes model.keras, train.npz and eval.npz next to this file.

    python examples/digits/train.py
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tfmot needs Keras 2 (tf_keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED = 0
EPOCHS = 40


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]  # (N, 8, 8, 1) in [0, 1]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)


def build_model() -> keras.Model:
    return keras.Sequential([
        keras.layers.Input(shape=(8, 8, 1), name="image"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2, name="pool"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(128, activation="relu", name="dense"),
        keras.layers.Dropout(0.25, name="dropout"),
        keras.layers.Dense(10, activation="softmax", name="classifier"),
    ], name="digits_cnn")


def main() -> None:
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    x_train, x_eval, y_train, y_eval = load_data()
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=EPOCHS, batch_size=32, shuffle=True, verbose=0)
    _, acc = model.evaluate(x_eval, y_eval, verbose=0)
    model.save(HERE / "model.keras")
    np.savez_compressed(HERE / "train.npz", x=x_train, y=y_train)
    np.savez_compressed(HERE / "eval.npz", x=x_eval, y=y_eval)
    print(f"eval accuracy {acc:.4f}; params {model.count_params()}; wrote model.keras, train.npz, eval.npz")


if __name__ == "__main__":
    main()
