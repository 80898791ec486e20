"""Train the image-folders example: a Keras 3 CNN whose data lives as PNG files in class
subfolders (data/train/<digit>/*.png, data/eval/<digit>/*.png), the layout
keras.utils.image_dataset_from_directory reads and `data.eval: {images: data/eval/}` gates.

scikit-learn's digits (8x8, 0..16) upscaled to 16x16 grayscale and written with
tf.io.encode_png: 30 training and 20 eval images per class (~100 KB in all). The model takes
pixels in [0, 1], so gate.yml says `scale: 1/255`, the preprocessing the model trained with.
Deterministic and offline. Writes data/ and model.keras next to this file.

    python examples/image-folders/train.py
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.pop("TF_USE_LEGACY_KERAS", None)   # Keras 3 itself
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

HERE = Path(__file__).resolve().parent
SEED, SIZE = 0, 16
PER_CLASS = {"train": 30, "eval": 20}


def write_pngs(root: Path) -> None:
    """data/<split>/<digit>/<index>.png: uint8 grayscale, upscaled bilinearly to SIZE x SIZE."""
    d = load_digits()
    pixels = tf.image.resize((d.images * (255 / 16))[..., None], (SIZE, SIZE)).numpy()
    pixels = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(SEED)
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(d.target == digit))
        start = 0
        for split, count in PER_CLASS.items():
            folder = root / split / str(digit)
            folder.mkdir(parents=True)
            for i in idx[start:start + count]:
                (folder / f"{i:04d}.png").write_bytes(tf.io.encode_png(pixels[i]).numpy())
            start += count


def dataset(split: str) -> tf.data.Dataset:
    """The split as Keras reads class folders, scaled to [0, 1] (the model's preprocessing)."""
    ds = keras.utils.image_dataset_from_directory(HERE / "data" / split, color_mode="grayscale",
                                                  image_size=(SIZE, SIZE), batch_size=32, shuffle=False)
    return ds.map(lambda x, y: (x / 255.0, y))


def main() -> None:
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    write_pngs(HERE / "data")
    model = keras.Sequential([
        keras.Input(shape=(SIZE, SIZE, 1), name="image"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(2, name="pool1"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2, name="pool2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(10, activation="softmax", name="classifier"),
    ], name="image_folders_cnn")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(dataset("train").shuffle(300, seed=SEED), epochs=40, verbose=0)
    _, acc = model.evaluate(dataset("eval"), verbose=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.save(HERE / "model.keras")
    print(f"keras {keras.__version__}: eval accuracy {acc:.4f}; params {model.count_params()}")


if __name__ == "__main__":
    main()
