"""Train the text example: an Embedding model over int32 token ids, built with Keras 3.

The "text" is scikit-learn's digits read as a sequence of 64 tokens (token = position x 17
+ pixel value, a vocabulary of 1088), so nothing is downloaded; the model is what a small
text classifier looks like: int32 tokens -> Embedding -> GlobalAveragePooling1D -> Dense.
The int32 input stays int32 through calibration, evaluation and benchmarking.

    python examples/text-int32/train.py
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
LENGTH, VALUES = 64, 17


def main() -> None:
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    d = load_digits()
    tokens = (d.data.astype(np.int32) + np.arange(LENGTH, dtype=np.int32) * VALUES).astype(np.int32)
    x_tr, x_ev, y_tr, y_ev = train_test_split(tokens, d.target.astype(np.int64), test_size=0.2,
                                              random_state=SEED, stratify=d.target)
    inputs = keras.Input(shape=(LENGTH,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(LENGTH * VALUES, 16, name="embedding")(inputs)
    h = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    outputs = keras.layers.Dense(10, activation="softmax", name="label")(h)
    model = keras.Model(inputs, outputs, name="token_classifier")
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_tr, y_tr, epochs=30, batch_size=32, shuffle=True, verbose=0)
    _, acc = model.evaluate(x_ev, y_ev, verbose=0)
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])   # a fresh optimizer: the file keeps no Adam moments
    model.save(HERE / "model.keras")
    np.savez_compressed(HERE / "train.npz", x=x_tr, y=y_tr)
    np.savez_compressed(HERE / "eval.npz", x=x_ev, y=y_ev)
    print(f"keras {keras.__version__}: eval accuracy {acc:.4f}; params {model.count_params()}")


if __name__ == "__main__":
    main()
