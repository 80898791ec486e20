"""Train the regression example: a small MLP on scikit-learn's diabetes data (442 patients,
10 features, the target a disease-progression score 25..346), built with Keras 3.

Deterministic and offline (load_diabetes ships inside scikit-learn). The target is kept in
its own units, so the gate reports MAE in points of the score.

    python examples/regression/train.py
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
from sklearn.datasets import load_diabetes  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED = 0


def main() -> None:
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    d = load_diabetes()
    x = (d.data / d.data.std(axis=0)).astype(np.float32)           # unit-variance features
    y = d.target.astype(np.float32)                                # float targets: a regression
    x_tr, x_ev, y_tr, y_ev = train_test_split(x, y, test_size=0.25, random_state=SEED)
    model = keras.Sequential([
        keras.Input(shape=(10,), name="features"),
        keras.layers.Dense(32, activation="relu", name="hidden1"),
        keras.layers.Dense(16, activation="relu", name="hidden2"),
        keras.layers.Dense(1, name="progression"),                  # linear: a regression head
    ], name="diabetes_mlp")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", metrics=["mae"])
    model.fit(x_tr, y_tr, epochs=200, batch_size=32, shuffle=True, verbose=0)
    _, mae = model.evaluate(x_ev, y_ev, verbose=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", metrics=["mae"])
    model.save(HERE / "model.keras")
    np.savez_compressed(HERE / "train.npz", x=x_tr, y=y_tr)
    np.savez_compressed(HERE / "eval.npz", x=x_ev, y=y_ev)
    print(f"keras {keras.__version__}: eval MAE {mae:.2f}; params {model.count_params()}")


if __name__ == "__main__":
    main()
