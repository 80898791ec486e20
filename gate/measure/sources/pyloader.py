"""The team's own loader, `{python: "tools/data.py:eval_split"}`: a function (no
arguments) returning a tf.data.Dataset of (x, y) or x — examples, or batches (a leading
dimension of None in its element_spec) — or numpy arrays: (x, y), x, or a mapping keyed as
an .npz. It is code: it runs only when trust_model_code is honoured (the base branch must
set it, as for SavedModels and Lambda layers), and only in the worker."""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Mapping

import numpy as np

from gate.config.sources import SourceRef
from gate.errors import DataError
from gate.measure.sources.base import Spool, digest_arrays, sample_indices

TRUST_HINT = ("set trust_model_code: true in gate.yml; in a pull request the base branch's gate.yml must set it "
              "too (docs/security.md)")
_LOADED: dict[tuple[str, str, int], tuple[dict[str, np.ndarray], str]] = {}   # one run per process


def check(ref: SourceRef, trusted: bool) -> None:
    if not trusted:
        raise DataError(f"{ref.path.name}:{ref.function} is code, and trust_model_code is not honoured here",
                        file=str(ref.path), field=ref.field, hint=TRUST_HINT)


def digest(ref: SourceRef, trusted: bool) -> str:
    return _run(ref, trusted)[1]


def load(ref: SourceRef, facts, trusted: bool) -> dict[str, np.ndarray]:
    arrays = _run(ref, trusted)[0]
    most, seed = ref.option("max_examples"), ref.option("seed")
    pick = sample_indices(len(next(iter(arrays.values()))), most, seed)
    if pick is None:
        return arrays
    return {k: a[:most] if seed is None else a[pick] for k, a in arrays.items()}


def _run(ref: SourceRef, trusted: bool) -> tuple[dict[str, np.ndarray], str]:
    check(ref, trusted)
    code = ref.path.read_bytes()
    key = (str(ref.path), ref.function or "", hash(code))
    if key not in _LOADED:
        result = _call(ref)
        arrays = _arrays(result, ref)
        h = hashlib.sha256(code + b"\0" + (ref.function or "").encode())
        digest_arrays(h, arrays)
        _LOADED[key] = arrays, h.hexdigest()
    return _LOADED[key]


def _call(ref: SourceRef):
    where = f"{ref.path.name}:{ref.function}"
    name = f"gate_data_loader_{abs(hash(str(ref.path)))}"
    try:
        spec = importlib.util.spec_from_file_location(name, ref.path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(ref.path.parent))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(ref.path.parent))
        function = getattr(module, ref.function or "", None)
        if not callable(function):
            raise DataError(f"{ref.path.name} defines no function {ref.function!r}", file=str(ref.path),
                            field=ref.field, hint="name a function of the file: FILE.py:FUNCTION")
        return function()
    except DataError:
        raise
    except BaseException as exc:  # noqa: BLE001 - the loader's failure is the loader's
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise DataError(f"the loader {where} raised {type(exc).__name__}: {text}", file=str(ref.path),
                        field=ref.field, hint="run it yourself: python -c 'import ...; "
                                              f"{ref.function}()'") from None


def _arrays(result, ref: SourceRef) -> dict[str, np.ndarray]:
    """Whatever the loader returned, as arrays keyed like an .npz."""
    file, field = str(ref.path), ref.field
    if hasattr(result, "element_spec") and hasattr(result, "as_numpy_iterator"):
        return _from_dataset(result, ref)
    if isinstance(result, Mapping):
        return {str(k): np.asarray(v) for k, v in result.items()}
    if isinstance(result, tuple) and len(result) == 2:
        return {**_keyed(result[0], "x", ref), **_keyed(result[1], "y", ref)}
    if isinstance(result, np.ndarray):
        return {"x": result}
    raise DataError(f"the loader returned {type(result).__name__}; expected a tf.data.Dataset of (x, y) or x, numpy "
                    "arrays (x, y), or a mapping of arrays keyed like an .npz", file=file, field=field)


def _keyed(value, role: str, ref: SourceRef) -> dict[str, np.ndarray]:
    if isinstance(value, Mapping):
        prefix = "y." if role == "y" else ""
        return {f"{prefix}{k}": np.asarray(v) for k, v in value.items()}
    return {role: np.asarray(value)}


def _leading(spec) -> object:
    first = spec if not isinstance(spec, (tuple, list, dict)) else (
        next(iter(spec.values())) if isinstance(spec, dict) else spec[0])
    if isinstance(first, (tuple, list, dict)):
        return _leading(first)
    shape = getattr(first, "shape", None)
    return shape[0] if shape is not None and len(shape) else 1


def _from_dataset(ds, ref: SourceRef) -> dict[str, np.ndarray]:
    """Examples spooled to disk one element at a time (a batched dataset: one batch)."""
    spec = ds.element_spec
    batched = _leading(spec) is None
    spool = Spool()
    try:
        for element in ds.as_numpy_iterator():
            parts = element if isinstance(element, tuple) and len(element) in (1, 2) else (element,)
            keyed = _keyed(parts[0], "x", ref)
            if len(parts) == 2:
                keyed.update(_keyed(parts[1], "y", ref))
            for key, a in keyed.items():
                spool.add(key, a if batched else a[None])
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(f"the loader's examples differ in shape: {exc}", file=str(ref.path), field=ref.field) from None
    except Exception as exc:  # noqa: BLE001 - a dataset failing while iterated is the loader's
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise DataError(f"iterating the loader's dataset raised {type(exc).__name__}: {text}",
                        file=str(ref.path), field=ref.field) from None
    arrays = spool.arrays()
    if not arrays:
        raise DataError("the loader's dataset is empty", file=str(ref.path), field=ref.field)
    return arrays
