"""Eval/train splits from their sources (gate.measure.sources: .npz, images in class
folders, TFRecord, CSV, the team's loader), checked against the model's inputs and outputs.

The keys (docs/configuration.md, "Data"):

- inputs: `x` for a single-input model; one array per input name for several inputs
  (`image`, `stats`: the Keras input layer names, or a .tflite's signature input names);
- targets: `y` for a single-output model, `y.<output name>` for several (each optional:
  without targets only label-free fidelity metrics apply to that output).

Every array is batch-first with the same number of examples. Inputs keep their dtype
(int32 token ids stay int32, uint8 images stay uint8) all the way to the interpreter.
Inputs may be memory-mapped or lazily scaled (gate.measure.sources.base): every check here
reads them chunk by chunk, and consumers slice batches. numpy only here: no TF (images are
decoded by their source). Every problem names the file and the field (`data.eval.x`,
`data.train.y.score`).
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from gate.config.sources import SourceRef
from gate.errors import DataError
from gate.measure.model import ModelFacts, TensorSpec
from gate.measure.sources.base import chunks, is_lazy, sample_indices
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
    source: str = "npz"                        # gate.config.sources.KINDS
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)   # input array key -> (min, max)
    notes: tuple[str, ...] = ()                # arrays the gate does not use (bound)
    head_limit: int | None = None              # evaluate.max_examples applied by head() (part of the cache key)

    @property
    def n(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0])

    @property
    def streamed(self) -> bool:
        """Whether an input is read from disk batch by batch (memory-mapped or lazily scaled)."""
        return any(is_lazy(a) for a in self.x.values())

    @property
    def bound(self) -> bool:
        return bool(self.x)

    def where(self, key: str) -> str:
        return f"data.{self.name}.{key}"

    def facts(self) -> dict:
        out: dict = {"path": str(self.path), "source": self.source, "examples": self.n, "sha256": self.sha256,
                     "arrays": {k: {"shape": list(v.shape[1:]), "dtype": str(v.dtype)} for k, v in self.arrays.items()}}
        if self.bound:
            first = next(iter(self.x.values()))
            out.update(x_shape=list(first.shape[1:]), x_dtype=str(first.dtype))
            if self.ranges:
                out["x_range"] = {k: [round(lo, 6), round(hi, 6)] for k, (lo, hi) in self.ranges.items()}
            out["targets"] = {name: self.tasks[name].kind for name in self.y}
            classes = [len(np.unique(self.y[n])) for n, t in self.tasks.items() if n in self.y and t.is_classes]
            if classes:
                out["classes_seen"] = int(classes[0])
        return out

    def first(self) -> dict[str, np.ndarray]:
        """One example per input, batch of 1 (benchmark input)."""
        return {name: np.asarray(a[:1]) for name, a in self.x.items()}


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_split(path: Path, name: str) -> Split:
    """Read every array of an .npz (no pickle; uncompressed members memory-mapped) and check
    what holds for any model: batch first, same example count, real numbers without
    NaN/inf in the inputs."""
    from gate.measure.sources import npz

    arrays = npz.read(path, f"data.{name}")
    return _checked(name, path, arrays, _sha256(path), "npz")


def open_split(ref: SourceRef, name: str, facts: ModelFacts, *, trusted: bool = False) -> Split:
    """The split from its source (gate.measure.sources): an .npz, images in class folders,
    TFRecord, CSV or the team's loader; inputs are streamed (memory-mapped or decoded once to
    a temporary file), never held whole in memory."""
    from gate.measure import sources

    if ref.kind == "npz":
        split = load_split(ref.path, name)
        most, seed = ref.option("max_examples"), ref.option("seed")
        pick = sample_indices(split.n, most, seed)
        if pick is None:
            return split
        arrays = {k: a[:most] if seed is None else a[pick] for k, a in split.arrays.items()}
        return replace(split, arrays=arrays, sha256=sources.digest(ref, trusted))
    sources.check(ref, trusted)
    arrays = sources.load(ref, facts, trusted)
    if not arrays:
        raise DataError("the source gave no arrays", file=str(ref.path), field=ref.where)
    return _checked(name, ref.path, arrays, sources.digest(ref, trusted), ref.kind)


def source_digest(ref: SourceRef | None, *, trusted: bool = False) -> str | None:
    """The content digest of a split's source (the cache key's): files' bytes, not names."""
    if ref is None:
        return None
    from gate.measure import sources

    return sources.digest(ref, trusted)


def _checked(name: str, path: Path, arrays: Mapping, sha256: str, source: str) -> Split:
    file = str(path)
    where = f"data.{name}"
    if not arrays:
        raise DataError("the .npz holds no arrays", file=file, field=where,
                        hint="save with np.savez(path, x=inputs, y=targets)")
    ranges = {}
    for key, a in arrays.items():
        found = _check_array(a, key, file, f"{where}.{key}", is_target=_is_target(key))
        if found is not None:
            ranges[key] = found
    counts = {k: int(a.shape[0]) for k, a in arrays.items()}
    if len(set(counts.values())) > 1:
        first = next(iter(counts))
        other = next(k for k in counts if counts[k] != counts[first])
        raise DataError(f"{first} has {counts[first]} examples but {other} has {counts[other]}", file=file,
                        field=f"{where}.{other}", hint="every array holds one row per example")
    return Split(name, path, arrays, sha256, source=source, ranges=ranges)


def _is_target(key: str) -> bool:
    return key == Y_KEY or key.startswith(Y_KEY + ".")


def _check_array(a, key: str, file: str, where: str, *, is_target: bool) -> tuple[float, float] | None:
    """Checks one array chunk by chunk (a memmap is never read whole); returns an input's
    value range (min, max)."""
    if a.ndim < (2 if key == X_KEY else 1):   # other inputs' shapes are checked against the model when bound
        what = "a batch dimension and a feature shape" if key == X_KEY else "a batch dimension"
        raise DataError(f"{key} must have {what}; got shape {a.shape}", file=file, field=where)
    if a.shape[0] == 0:
        raise DataError(f"{key} is empty (0 examples)", file=file, field=where)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.iscomplexobj(a[:0]):
        raise DataError(f"{key} must be a real numeric array; got dtype {a.dtype}", file=file, field=where)
    if is_target or a.dtype == np.bool_:
        return None
    low, high, bad = np.inf, -np.inf, 0
    for part in chunks(a):
        if np.issubdtype(part.dtype, np.floating):
            finite = np.isfinite(part)
            if not finite.all():
                bad += int((~finite).reshape(part.shape[0], -1).any(axis=1).sum())
                continue
        if part.size:
            low, high = min(low, float(part.min())), max(high, float(part.max()))
    if bad:
        raise DataError(f"{key} has NaN or infinite values in {bad} example(s)", file=file, field=where)
    return (low, high) if low <= high else None


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
    used = {k for k in split.arrays if k in x or _is_target(k)} | ({X_KEY} if len(inputs) == 1 else set())
    notes = tuple(_unused_note(split, key, len(outputs)) for key in split.arrays if key not in used)
    return replace(split, x=x, y=y, tasks=tasks, notes=notes)


def _unused_note(split: Split, key: str, outputs: int) -> str:
    targets = "'y'" if outputs == 1 else "'y.<output name>'"
    return (f"unused array '{key}' in {split.path.name} ({split.where(key)}): inputs are named 'x' (or the model's "
            f"input names), targets are named {targets}")


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
        info = np.iinfo(dtype)
        for part in chunks(a):
            if np.issubdtype(part.dtype, np.floating) and not (part == np.round(part)).all():
                raise DataError(f"{key} holds non-integer values, but the model's input '{spec.name}' is "
                                f"{spec.dtype} (token ids?)", file=file, field=where)
            if part.size and (part.min() < info.min or part.max() > info.max):
                raise DataError(f"{key} has values outside {spec.dtype}'s range ({part.min()}..{part.max()})",
                                file=file, field=where)
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
    return {name: np.asarray(a[idx]) for name, a in split.x.items()}


def head(split: Split, n: int | None) -> Split:
    if n is None or n >= split.n:
        return replace(split, head_limit=n)
    return replace(split, head_limit=n, arrays={k: a[:n] for k, a in split.arrays.items()}, x={k: a[:n] for k, a in split.x.items()},
                   y={k: a[:n] for k, a in split.y.items()})


def input_ranges(split: Split) -> dict[str, tuple[float, float]]:
    """A bound split's value range per model input name."""
    single = len(split.x) == 1
    out = {}
    for name in split.x:
        found = split.ranges.get(name) or (split.ranges.get(X_KEY) if single else None)
        if found is not None:
            out[name] = found
    return out


RANGE_FACTOR = 10.0       # spans differing by more than this factor (or not overlapping) are "wildly" apart


def range_notes(train: Split | None, eval_split: Split) -> list[str]:
    """A warning per input whose eval value range differs wildly from the train split's
    (different preprocessing: 0..255 vs 0..1)."""
    if train is None:
        return []
    notes = []
    for key, (elo, ehi) in eval_split.ranges.items():
        if key not in train.ranges:
            continue
        tlo, thi = train.ranges[key]
        espan, tspan = ehi - elo, thi - tlo
        apart = ehi < tlo or thi < elo
        ratio = max(espan, 1e-12) / max(tspan, 1e-12)
        if apart or ratio > RANGE_FACTOR or ratio < 1 / RANGE_FACTOR:
            notes.append(f"warning: eval inputs '{key}' range {elo:.4g}..{ehi:.4g} but train inputs range "
                         f"{tlo:.4g}..{thi:.4g} ({eval_split.path.name} vs {train.path.name}): is the same "
                         "preprocessing (scale, offset) applied to both?")
    return notes
