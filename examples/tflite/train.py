"""Make the committed-.tflite example: a small digits CNN trained with Keras 3 and
converted to a float32 .tflite, the way a repo that ships a .tflite commits it.

Deterministic and offline (scikit-learn's digits). Writes model.tflite, train.npz and
eval.npz next to this file; the Keras model itself is not kept: the gate sees only the
.tflite (its signature input is named `image`, the arrays use the single-input key `x`).

    python examples/tflite/train.py
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
    x = (d.images / 16.0).astype(np.float32)[..., None]
    x_tr, x_ev, y_tr, y_ev = train_test_split(x, d.target.astype(np.int64), test_size=0.2,
                                              random_state=SEED, stratify=d.target)
    model = keras.Sequential([
        keras.Input(shape=(8, 8, 1), name="image"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_tr, y_tr, epochs=30, batch_size=32, shuffle=True, verbose=0)
    _, acc = model.evaluate(x_ev, y_ev, verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    (HERE / "model.tflite").write_bytes(converter.convert())
    np.savez_compressed(HERE / "train.npz", x=x_tr, y=y_tr)
    np.savez_compressed(HERE / "eval.npz", x=x_ev, y=y_ev)
    print(f"keras {keras.__version__}: eval accuracy {acc:.4f}; params {model.count_params()}")


if __name__ == "__main__":
    main()
