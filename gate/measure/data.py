"""Eval/train splits from .npz files (arrays `x` and `y`), checked against the model.

numpy only: no TF. Every problem names the file and what is wrong.
"""
from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gate.errors import DataError


@dataclass(frozen=True)
class Split:
    name: str            # "train" | "eval"
    path: Path
    x: np.ndarray
    y: np.ndarray        # int64 class ids, shape (N,)
    sha256: str

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def facts(self) -> dict:
        return {"path": str(self.path), "examples": self.n, "x_shape": list(self.x.shape[1:]),
                "x_dtype": str(self.x.dtype), "classes_seen": int(len(np.unique(self.y))),
                "sha256": self.sha256}


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_split(path: Path, name: str) -> Split:
    """Read `x` and `y` from an .npz; labels become int64 class ids."""
    file = str(path)
    if not zipfile.is_zipfile(path):
        raise DataError("not a readable .npz file (expected a zip archive of arrays x and y, as np.savez "
                        "writes)", file=file, field=f"data.{name}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("x", "y") if k not in npz.files]
            if missing:
                raise DataError(f"missing array(s) {', '.join(missing)}; found {sorted(npz.files) or 'none'}",
                                file=file, field=f"data.{name}",
                                hint="save with np.savez(path, x=inputs, y=labels)")
            x, y = npz["x"], npz["y"]
    except DataError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"not a readable .npz file ({type(exc).__name__}: {exc})", file=file,
                        field=f"data.{name}") from None
    except ValueError as exc:  # object arrays need pickle; refused
        raise DataError(f"cannot read arrays without pickle: {exc}", file=file, field=f"data.{name}",
                        hint="store numeric arrays, not Python objects") from None
    return Split(name, path, _check_x(x, file, name), _check_y(y, x, file, name), _sha256(path))


def _check_x(x: np.ndarray, file: str, name: str) -> np.ndarray:
    if x.ndim < 2:
        raise DataError(f"x must have a batch dimension and a feature shape; got shape {x.shape}",
                        file=file, field=f"data.{name}.x")
    if x.shape[0] == 0:
        raise DataError("x is empty (0 examples)", file=file, field=f"data.{name}.x")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
        raise DataError(f"x must be a real numeric array; got dtype {x.dtype}", file=file, field=f"data.{name}.x")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(x.shape[0], -1).any(axis=1).sum())
        raise DataError(f"x has NaN or infinite values in {bad} example(s)", file=file, field=f"data.{name}.x")
    return x


def _check_y(y: np.ndarray, x: np.ndarray, file: str, name: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2 and y.shape[1] > 1 and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
        y = y.argmax(axis=1)  # one-hot labels
    if y.ndim != 1:
        raise DataError(f"y must be class ids of shape (N,) or one-hot (N, classes); got shape {y.shape}",
                        file=file, field=f"data.{name}.y")
    if y.shape[0] != x.shape[0]:
        raise DataError(f"x has {x.shape[0]} examples but y has {y.shape[0]}", file=file, field=f"data.{name}.y")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not (y == np.round(y)).all():
            raise DataError("y must hold integer class ids; found non-integer values", file=file,
                            field=f"data.{name}.y")
    elif not np.issubdtype(y.dtype, np.integer) and y.dtype != np.bool_:
        raise DataError(f"y must hold integer class ids; got dtype {y.dtype}", file=file, field=f"data.{name}.y")
    y = y.astype(np.int64)
    if (y < 0).any():
        raise DataError(f"y has negative class ids (min {int(y.min())})", file=file, field=f"data.{name}.y")
    return y


def check_fits(split: Split, input_shape: tuple[int | None, ...], n_classes: int) -> None:
    """Refuse data whose example shape or labels do not fit the model."""
    want = tuple(input_shape[1:])
    got = tuple(split.x.shape[1:])
    fits = len(want) == len(got) and all(w is None or w == g for w, g in zip(want, got))
    if not fits:
        shown = "(" + ", ".join("N" if w is None else str(w) for w in (None,) + want) + ")"
        raise DataError(f"x has shape {split.x.shape}, the model expects {shown}", file=str(split.path),
                        field=f"data.{split.name}.x",
                        hint="reshape or preprocess the arrays the way the model was trained")
    top = int(split.y.max())
    limit = max(n_classes, 2)
    if top >= limit:
        raise DataError(f"y has class id {top}, but the model has {n_classes} output(s) "
                        f"(valid ids 0..{limit - 1})", file=str(split.path), field=f"data.{split.name}.y")


def representative(split: Split, count: int, *, seed: int = 0) -> np.ndarray:
    """A fixed, seeded sample of train examples for calibration."""
    count = min(count, split.n)
    idx = np.sort(np.random.default_rng(seed).choice(split.n, size=count, replace=False))
    return split.x[idx]


def head(split: Split, n: int | None) -> Split:
    if n is None or n >= split.n:
        return split
    return Split(split.name, split.path, split.x[:n], split.y[:n], split.sha256)
