"""Builders for hostile model files used by test_scan.py.

Everything is built inside the tests: no hostile file is checked into the repository.
Functions that need Keras take the `tf_keras` module as an argument so this module can
be imported without TensorFlow.
"""
from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

ZERO_CHUNK = bytes(1024 * 1024)


# --------------------------------------------------------------------------- Keras models

def canary_function(canary: Path) -> Callable:
    """A lambda that writes `canary` whenever it is called (e.g. when Keras rebuilds a
    model containing it). The path is baked into the bytecode as a constant so it
    survives Keras' marshal-based serialization."""
    source = (f"lambda x: (__import__('pathlib').Path({str(canary)!r})"
              f".write_text('pwned'), x)[1]")
    return eval(source)  # noqa: S307 - deliberately hostile test fixture


def lambda_model(K: Any, canary: Path) -> Any:
    """Sequential model with a Lambda named 'evil' at layers[2] (after the InputLayer)."""
    model = K.Sequential([K.Input((4,)), K.layers.Dense(4, name="dense"),
                          K.layers.Lambda(canary_function(canary), name="evil"),
                          K.layers.Dense(2, name="head")])
    _forget(canary)   # building the model called the lambda once
    return model


def nested_lambda_model(K: Any, canary: Path) -> Any:
    """Functional model whose sub-model 'inner' hides a Lambda."""
    inner = K.Sequential([K.Input((4,)), K.layers.Dense(4),
                          K.layers.Lambda(canary_function(canary), name="evil")], name="inner")
    inp = K.Input((4,))
    out = K.layers.Dense(2)(inner(K.layers.Dense(4)(inp)))
    model = K.Model(inp, out)
    _forget(canary)
    return model


def wrapped_lambda_model(K: Any, canary: Path) -> Any:
    """A Lambda inside a TimeDistributed wrapper (config.layers[i].config.layer)."""
    model = K.Sequential([K.Input((3, 4)),
                          K.layers.TimeDistributed(K.layers.Lambda(canary_function(canary),
                                                                   name="evil")),
                          K.layers.Flatten(), K.layers.Dense(2)])
    _forget(canary)
    return model


def _forget(canary: Path) -> None:
    if canary.exists():
        canary.unlink()


# --------------------------------------------------------------------------- .keras zips

def rewrite_keras(src: Path, dst: Path, *,
                  edit_config: Callable[[dict], None] | None = None,
                  replace: dict[str, bytes] | None = None,
                  extra: list[tuple[zipfile.ZipInfo | str, bytes]] | None = None,
                  compression: int = zipfile.ZIP_STORED) -> Path:
    """Copy a .keras zip, optionally editing config.json, replacing or adding members."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for info in zin.infolist():
            data = replace.get(info.filename, zin.read(info))
            if info.filename == "config.json" and edit_config is not None:
                config = json.loads(data)
                edit_config(config)
                data = json.dumps(config).encode()
            zout.writestr(info.filename, data)
        for name, data in extra or []:
            zout.writestr(name, data)
    return dst


def symlink_member(name: str) -> zipfile.ZipInfo:
    """A zip entry marked as a symbolic link; its data is the link target."""
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def write_zip_bomb(src: Path, dst: Path, *, member: str = "assets/bomb.bin",
                   mib: int = 64) -> Path:
    """A valid .keras plus one member of `mib` MiB of zeros, deflated to ~1/1000 of that.

    Streams the member so neither memory nor disk ever holds the expanded bytes."""
    rewrite_keras(src, dst)
    with zipfile.ZipFile(dst, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(member, "w", force_zip64=True) as out:
            for _ in range(mib):
                out.write(ZERO_CHUNK)
    return dst


def write_keras_zip(dst: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return dst


# --------------------------------------------------------------------------- config edits

def layer(config: dict, index: int) -> dict:
    return config["config"]["layers"][index]


def set_class(index: int, class_name: str, module: str | None = "keras.layers",
              registered_name: str | None = None) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        target = layer(config, index)
        target["class_name"] = class_name
        target["module"] = module
        target["registered_name"] = registered_name
    return edit


def set_activation(index: int, value: Any) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        layer(config, index)["config"]["activation"] = value
    return edit


def nest_lists(index: int, depth: int) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        value: Any = 0
        for _ in range(depth):
            value = [value]
        layer(config, index)["config"]["padding_junk"] = value
    return edit


# --------------------------------------------------------------------------- HDF5

def copy_file(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def add_external_link(h5_path: Path, target: Path, where: str = "model_weights/evil") -> None:
    import h5py
    with h5py.File(target, "w") as t:
        t.create_dataset("secret", data=np.arange(4))
    with h5py.File(h5_path, "a") as f:
        f[where] = h5py.ExternalLink(str(target), "/secret")


def add_soft_link(h5_path: Path, where: str = "model_weights/alias",
                  target: str = "/model_weights") -> None:
    import h5py
    with h5py.File(h5_path, "a") as f:
        f[where] = h5py.SoftLink(target)


def add_external_dataset(h5_path: Path, target: Path) -> None:
    import h5py
    target.write_bytes(bytes(16))
    with h5py.File(h5_path, "a") as f:
        f.create_dataset("model_weights/ext", shape=(4,), dtype="f4",
                         external=[(str(target), 0, 16)])


def add_virtual_dataset(h5_path: Path, source: Path) -> None:
    import h5py
    with h5py.File(source, "w") as s:
        s.create_dataset("data", data=np.zeros(4, dtype="f4"))
    layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
    layout[:] = h5py.VirtualSource(str(source), "data", shape=(4,))
    with h5py.File(h5_path, "a") as f:
        f.create_virtual_dataset("model_weights/virtual", layout)


def h5_bytes_with_external_link(target: Path, scratch: Path) -> bytes:
    """A small HDF5 file (as bytes) containing an external link, for zip members."""
    import h5py
    with h5py.File(scratch, "w") as f:
        f.create_group("layers")
        f["layers/evil"] = h5py.ExternalLink(str(target), "/")
    return scratch.read_bytes()


# --------------------------------------------------------------------------- raw bytes

def random_file(path: Path, n: int = 4096, seed: int = 0) -> Path:
    path.write_bytes(np.random.default_rng(seed).bytes(n))
    return path


def truncated(src: Path, dst: Path, n: int) -> Path:
    dst.write_bytes(src.read_bytes()[:n])
    return dst


def make_savedmodel_dir(path: Path) -> Path:
    """A directory shaped like a SavedModel (the scan never parses saved_model.pb)."""
    os.makedirs(path / "variables", exist_ok=True)
    (path / "saved_model.pb").write_bytes(b"\x08\x01" + bytes(30))
    (path / "variables" / "variables.index").write_bytes(bytes(8))
    return path
