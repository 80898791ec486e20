"""Shared fixtures: one tiny digits CNN trained once per session, its data, configs."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Every test measures for real; the cache tests name their own --cache-dir and clear this.
os.environ["GATE_NO_CACHE"] = "1"


@dataclass(frozen=True)
class Tiny:
    dir: Path
    keras: Path
    h5: Path
    train: Path
    eval: Path
    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray


def digits_arrays(n_train: int = 600, n_eval: int = 200):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    tr, ev = idx[:n_train], idx[n_train:n_train + n_eval]
    return x[tr], y[tr], x[ev], y[ev]


def build_tiny_model(seed: int = 0):
    from gate.measure.tfenv import keras

    k = keras()
    k.utils.set_random_seed(seed)
    model = k.Sequential([
        k.layers.Input(shape=(8, 8, 1), name="image"),
        k.layers.Conv2D(8, 3, activation="relu", name="conv"),
        k.layers.Flatten(name="flatten"),
        k.layers.Dense(10, activation="softmax", name="classifier"),
    ], name="tiny")
    model.compile(optimizer=k.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Tiny:
    x_tr, y_tr, x_ev, y_ev = digits_arrays()
    model = build_tiny_model()
    model.fit(x_tr, y_tr, epochs=8, batch_size=32, verbose=0)
    d = tmp_path_factory.mktemp("tiny")
    model.save(d / "model.keras")
    model.save(d / "model.h5")
    np.savez(d / "train.npz", x=x_tr, y=y_tr)
    np.savez(d / "eval.npz", x=x_ev, y=y_ev)
    return Tiny(d, d / "model.keras", d / "model.h5", d / "train.npz", d / "eval.npz", x_tr, y_tr, x_ev, y_ev)


@pytest.fixture(scope="session")
def tiny_model(tiny):
    from gate.measure.model import load_model

    return load_model(tiny.keras)


def write_config(directory: Path, tiny: Tiny, **overrides) -> Path:
    """A gate.yml in `directory` pointing at the tiny model; overrides replace top-level keys
    (None removes one)."""
    cfg = {
        "model": str(tiny.keras),
        "data": {"train": str(tiny.train), "eval": str(tiny.eval)},
        "policy": "int8",
        "thresholds": {"accuracy": {"max_drop": 0.05}},
        "benchmark": {"threads": 1, "warmup": 2, "runs": 20},
    }
    for key, value in overrides.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    path = directory / "gate.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_check(tmp_path: Path, config: Path, *extra: str):
    """`gate check` through click; returns (click result, report.json as dict)."""
    import json

    from click.testing import CliRunner

    from gate.cli import main

    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["check", "--config", str(config), "--out", str(out), *extra])
    report = json.loads((out / "report.json").read_text())
    assert (out / "report.md").read_text().startswith("## ")
    return result, report


@pytest.fixture(scope="session")
def passing_run(tiny, tmp_path_factory):
    """One passing run with every threshold set, shared by the report tests."""
    d = tmp_path_factory.mktemp("pass")
    cfg = write_config(d, tiny, thresholds={
        "size_kb": {"max": 50}, "compression": {"min": 2.0}, "accuracy": {"min": 0.5, "max_drop": 0.05},
        "latency_ms": {"p50_max": 1000, "p99_max": 1000}, "latency": {"max_ratio": 100}})
    return run_check(d, cfg)


# -- Keras 3 models (tests/keras3_models.py) ------------------------------------------------

@dataclass(frozen=True)
class Keras3Files:
    dir: Path
    cnn_bn: Path          # Sequential with BatchNormalization, default layer names
    cnn_bn_h5: Path
    two_io: Path          # inputs zeta_image + alpha_stats, outputs digit (softmax) + ink (linear)
    two_io_train: Path
    two_io_eval: Path
    uint8: Path           # uint8 pixels in
    uint8_train: Path
    uint8_eval: Path


@pytest.fixture(scope="session")
def keras3_files(tiny, tmp_path_factory) -> Keras3Files:
    import keras3_models as km

    from gate.measure.tfenv import keras3

    k3 = keras3()
    d = tmp_path_factory.mktemp("keras3")
    x_tr, y_tr, x_ev, y_ev, _ = km.digits()
    cnn = km.cnn_bn(k3)
    km.train_and_save(k3, cnn, x_tr, y_tr, d / "cnn_bn.keras")
    cnn.save(d / "cnn_bn.h5")
    ink_tr, ink_ev = x_tr.mean(axis=(1, 2, 3)), x_ev.mean(axis=(1, 2, 3))
    two = km.two_io(k3)
    km.train_and_save(k3, two, {"zeta_image": x_tr, "alpha_stats": km.stats_of(x_tr)}, {"digit": y_tr, "ink": ink_tr},
                      d / "two_io.keras", loss={"digit": "sparse_categorical_crossentropy", "ink": "mse"})
    for name, x, y, ink in (("two_io_train", x_tr, y_tr, ink_tr), ("two_io_eval", x_ev, y_ev, ink_ev)):
        np.savez(d / f"{name}.npz", zeta_image=x, alpha_stats=km.stats_of(x), **{"y.digit": y, "y.ink": ink})
    u8 = km.uint8_images(k3)
    px_tr, px_ev = np.round(x_tr * 16).astype(np.uint8), np.round(x_ev * 16).astype(np.uint8)
    km.train_and_save(k3, u8, px_tr, y_tr, d / "uint8.keras")
    np.savez(d / "uint8_train.npz", x=px_tr, y=y_tr)
    np.savez(d / "uint8_eval.npz", x=px_ev, y=y_ev)
    return Keras3Files(d, d / "cnn_bn.keras", d / "cnn_bn.h5", d / "two_io.keras", d / "two_io_train.npz",
                       d / "two_io_eval.npz", d / "uint8.keras", d / "uint8_train.npz", d / "uint8_eval.npz")


def train_samples(tiny: Tiny, n: int) -> dict:
    """n seeded calibration examples of the tiny model's train split, by input name."""
    from gate.measure.data import bind, load_split, representative
    from gate.measure.model import load_model

    return representative(bind(load_split(tiny.train, "train"), load_model(tiny.keras).facts), n)


def tiny_scoring(tiny: Tiny):
    from gate.measure.data import bind, load_split
    from gate.measure.evaluate import Scoring
    from gate.measure.model import load_model

    return Scoring.of(bind(load_split(tiny.eval, "eval"), load_model(tiny.keras).facts), None, [], [1])


def tflite_accuracy(content: bytes, tiny: Tiny) -> float:
    from gate.measure.evaluate import evaluate_tflite

    return evaluate_tflite(content, tiny_scoring(tiny), 64, ["classifier"]).top(1)


def keras_accuracy_of(model, tiny: Tiny) -> float:
    from gate.measure.evaluate import evaluate_keras

    return evaluate_keras(model, tiny_scoring(tiny), 64).top(1)
