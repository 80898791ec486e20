"""Eval/train splits from .npz files, checked against the model's inputs and outputs.

The keys (docs/configuration.md, "Data"):

- inputs: `x` for a single-input model; one array per input name for several inputs
  (`image`, `stats`: the Keras input layer names, or a .tflite's signature input names);
- targets: `y` for a single-output model, `y.<output name>` for several (each optional:
  without targets only label-free fidelity metrics apply to that output).

Every array is batch-first with the same number of examples. Inputs keep their dtype
(int32 token ids stay int32, uint8 images stay uint8) all the way to the interpreter.
numpy only: no TF. Every problem names the file and the field (`data.eval.x`,
`data.train.y.score`).
"""
from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gate.errors import DataError
from gate.measure.model import ModelFacts, TensorSpec
from gate.measure.tasks import OutputTask, infer_task

X_KEY, Y_KEY = "x", "y"


@dataclass(frozen=True)
class Split:
    name: str                                  # "train" | "eval"
    path: Path
    arrays: Mapping[str, np.ndarray] = field(repr=False)   # every array of the .npz, as read
    sha256: str
    x: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)  # input name -> examples (bound)
    y: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)  # output name -> targets (bound)
    tasks: Mapping[str, OutputTask] = field(default_factory=dict)   # output name -> its task (bound)

    @property
    def n(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0])

    @property
    def bound(self) -> bool:
        return bool(self.x)

    def where(self, key: str) -> str:
        return f"data.{self.name}.{key}"

    def facts(self) -> dict:
        out: dict = {"path": str(self.path), "examples": self.n, "sha256": self.sha256,
                     "arrays": {k: {"shape": list(v.shape[1:]), "dtype": str(v.dtype)} for k, v in self.arrays.items()}}
        if self.bound:
            first = next(iter(self.x.values()))
            out.update(x_shape=list(first.shape[1:]), x_dtype=str(first.dtype))
            out["targets"] = {name: self.tasks[name].kind for name in self.y}
            classes = [len(np.unique(self.y[n])) for n, t in self.tasks.items() if n in self.y and t.is_classes]
            if classes:
                out["classes_seen"] = int(classes[0])
        return out

    def first(self) -> dict[str, np.ndarray]:
        """One example per input, batch of 1 (benchmark input)."""
        return {name: a[:1] for name, a in self.x.items()}


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_split(path: Path, name: str) -> Split:
    """Read every array of an .npz (no pickle) and check what holds for any model: batch
    first, same example count, real numbers without NaN/inf in the inputs."""
    file = str(path)
    where = f"data.{name}"
    if not zipfile.is_zipfile(path):
        raise DataError("not a readable .npz file (expected a zip archive of arrays, as np.savez writes)",
                        file=file, field=where)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"not a readable .npz file ({type(exc).__name__}: {exc})", file=file, field=where) from None
    except ValueError as exc:  # object arrays need pickle; refused
        raise DataError(f"cannot read arrays without pickle: {exc}", file=file, field=where,
                        hint="store numeric arrays, not Python objects") from None
    if not arrays:
        raise DataError("the .npz holds no arrays", file=file, field=where,
                        hint="save with np.savez(path, x=inputs, y=targets)")
    for key, a in arrays.items():
        _check_array(a, key, file, f"{where}.{key}", is_target=_is_target(key))
    counts = {k: int(a.shape[0]) for k, a in arrays.items()}
    if len(set(counts.values())) > 1:
        first = next(iter(counts))
        other = next(k for k in counts if counts[k] != counts[first])
        raise DataError(f"{first} has {counts[first]} examples but {other} has {counts[other]}", file=file,
                        field=f"{where}.{other}", hint="every array holds one row per example")
    return Split(name, path, arrays, _sha256(path))


def _is_target(key: str) -> bool:
    return key == Y_KEY or key.startswith(Y_KEY + ".")


def _check_array(a: np.ndarray, key: str, file: str, where: str, *, is_target: bool) -> None:
    if a.ndim < (1 if is_target else 2):
        what = "a batch dimension" if is_target else "a batch dimension and a feature shape"
        raise DataError(f"{key} must have {what}; got shape {a.shape}", file=file, field=where)
    if a.shape[0] == 0:
        raise DataError(f"{key} is empty (0 examples)", file=file, field=where)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.iscomplexobj(a):
        raise DataError(f"{key} must be a real numeric array; got dtype {a.dtype}", file=file, field=where)
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).reshape(a.shape[0], -1).any(axis=1).sum())
        raise DataError(f"{key} has NaN or infinite values in {bad} example(s)", file=file, field=where)


# -- binding to a model ---------------------------------------------------------------------

def bind(split: Split, facts: ModelFacts) -> Split:
    """The split keyed by the model's input and output names, each input checked against
    its tensor (shape, integer dtype), each target against its output's task."""
    file = str(split.path)
    inputs, outputs = facts.inputs, facts.outputs
    x: dict[str, np.ndarray] = {}
    if len(inputs) == 1:
        key = X_KEY if X_KEY in split.arrays else inputs[0].name if inputs[0].name in split.arrays else None
        if key is None:
            raise DataError(f"missing array x (the model's input{_named(inputs)}); found "
                            f"{sorted(split.arrays)}", file=file, field=split.where(X_KEY),
                            hint="save with np.savez(path, x=inputs, y=targets)")
        x[inputs[0].name] = _check_input(split.arrays[key], inputs[0], file, split.where(key))
    else:
        missing = [t.name for t in inputs if t.name not in split.arrays]
        if missing:
            raise DataError(f"missing array(s) {', '.join(missing)}: a model with several inputs takes one array "
                            f"per input name ({', '.join(t.name for t in inputs)}); found {sorted(split.arrays)}",
                            file=file, field=split.where(missing[0]),
                            hint="np.savez(path, " + ", ".join(f"{t.name}=..." for t in inputs) + ", y=...)")
        for t in inputs:
            x[t.name] = _check_input(split.arrays[t.name], t, file, split.where(t.name))
    y, tasks = _bind_targets(split, outputs, file)
    return Split(split.name, split.path, split.arrays, split.sha256, x, y, tasks)


def _named(specs: tuple[TensorSpec, ...]) -> str:
    return f" '{specs[0].name}'" if specs and specs[0].name else ""


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in (None,) + tuple(shape[1:])) + ")"


def _check_input(a: np.ndarray, spec: TensorSpec, file: str, where: str) -> np.ndarray:
    key = where.rsplit(".", 1)[-1]
    want, got = tuple(spec.shape[1:]), tuple(a.shape[1:])
    if not (len(want) == len(got) and all(w is None or w == g for w, g in zip(want, got))):
        raise DataError(f"{key} has shape {a.shape}, the model expects {_shape_text(spec.shape)}"
                        + (f" for input '{spec.name}'" if key != spec.name else ""), file=file, field=where,
                        hint="reshape or preprocess the arrays the way the model was trained")
    dtype = np.dtype(spec.dtype) if spec.dtype in np.sctypeDict else None
    if dtype is not None and np.issubdtype(dtype, np.integer) and not spec.quantized:
        if np.issubdtype(a.dtype, np.floating) and not (a == np.round(a)).all():
            raise DataError(f"{key} holds non-integer values, but the model's input '{spec.name}' is {spec.dtype} "
                            "(token ids?)", file=file, field=where)
        info = np.iinfo(dtype)
        if a.size and (a.min() < info.min or a.max() > info.max):
            raise DataError(f"{key} has values outside {spec.dtype}'s range ({a.min()}..{a.max()})", file=file,
                            field=where)
    return a


def _bind_targets(split: Split, outputs: tuple[TensorSpec, ...], file: str
                  ) -> tuple[dict[str, np.ndarray], dict[str, OutputTask]]:
    names = [o.name for o in outputs]
    keys = [k for k in split.arrays if _is_target(k)]
    if len(outputs) == 1:
        allowed = {Y_KEY: names[0], f"{Y_KEY}.{names[0]}": names[0]}
    else:
        allowed = {f"{Y_KEY}.{n}": n for n in names}
    for key in keys:
        if key not in allowed:
            if key == Y_KEY:
                why = (f"the model has {len(outputs)} outputs ({', '.join(names)}): name the targets of each, "
                       + ", ".join(f"'y.{n}'" for n in names))
            else:
                why = f"{key!r} names no output of the model (outputs: {', '.join(names)})"
            raise DataError(why, file=file, field=split.where(key),
                            hint="np.savez(path, ..., " + ", ".join(f"**{{'y.{n}': ...}}" for n in names) + ")"
                            if len(outputs) > 1 else None)
    by_output = {allowed[k]: k for k in keys}
    y: dict[str, np.ndarray] = {}
    tasks: dict[str, OutputTask] = {}      # in the model's output order
    for spec in outputs:
        key = by_output.get(spec.name)
        target = None if key is None else split.arrays[key]
        tasks[spec.name] = infer_task(spec, target)
        if key is not None:
            y[spec.name] = _check_target(target, tasks[spec.name], spec, file, split.where(key))
    return y, tasks


def _check_target(y: np.ndarray, task: OutputTask, spec: TensorSpec, file: str, where: str) -> np.ndarray:
    key = where.split(".", 2)[-1]        # data.eval.y.score -> y.score
    if task.is_classes:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim == 2 and y.shape[1] > 1 and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
            y = y.argmax(axis=1)   # one-hot labels
        if y.ndim != 1:
            raise DataError(f"{key} must be class ids of shape (N,) or one-hot (N, classes); got shape {y.shape}",
                            file=file, field=where)
        if np.issubdtype(y.dtype, np.floating) and not (y == np.round(y)).all():
            raise DataError(f"{key} must hold integer class ids; found non-integer values", file=file, field=where,
                            hint="for a regression output the model's last layer should be linear")
        y = y.astype(np.int64)
        if (y < 0).any():
            raise DataError(f"{key} has negative class ids (min {int(y.min())})", file=file, field=where)
        limit = max(task.units, 2)
        if int(y.max()) >= limit:
            raise DataError(f"{key} has class id {int(y.max())}, but output '{spec.name}' has {task.units} unit(s) "
                            f"(valid ids 0..{limit - 1})", file=file, field=where)
        return y
    per_example = int(np.prod([d for d in spec.shape[1:] if d is not None])) if spec.shape[1:] else 1
    if y.ndim == 1:
        y = y[:, None]
    flat = y.reshape(y.shape[0], -1)
    if flat.shape[1] != per_example:
        raise DataError(f"{key} has {flat.shape[1]} value(s) per example, output '{spec.name}' has {per_example}",
                        file=file, field=where)
    return flat.astype(np.float64)


def keras_inputs(split: Split) -> np.ndarray | dict[str, np.ndarray]:
    """What model.predict/fit takes: the array for one input, a dict by name for several."""
    return next(iter(split.x.values())) if len(split.x) == 1 else dict(split.x)


def keras_targets(split: Split, output_names: list[str]) -> np.ndarray | dict[str, np.ndarray] | None:
    """The targets as fit() takes them (class ids, or float values shaped like the output)."""
    if not split.y:
        return None
    if len(output_names) == 1:
        return split.y.get(output_names[0])
    return {n: split.y[n] for n in output_names if n in split.y}


def representative(split: Split, count: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed, seeded sample of train examples for calibration, by input name, each
    input in its own dtype."""
    count = min(count, split.n)
    idx = np.sort(np.random.default_rng(seed).choice(split.n, size=count, replace=False))
    return {name: a[idx] for name, a in split.x.items()}


def head(split: Split, n: int | None) -> Split:
    if n is None or n >= split.n:
        return split
    return Split(split.name, split.path, {k: a[:n] for k, a in split.arrays.items()}, split.sha256,
                 {k: a[:n] for k, a in split.x.items()}, {k: a[:n] for k, a in split.y.items()}, split.tasks)
