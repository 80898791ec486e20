"""Frozen result objects <-> plain JSON plus binary blobs, for the cache (gate.run.worker.cache).

Only the dataclasses in TYPES can be rebuilt, by name, with exactly their fields; arrays
are .npy blobs read with allow_pickle=False; bytes are blobs. Nothing else is accepted:
a record is data, never code (no pickle, no import by name).
"""
from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np

from gate.measure.bridge import BridgeCheck
from gate.measure.convert import Converted
from gate.measure.evaluate import EvalResult
from gate.measure.model import ModelFacts, TensorSpec
from gate.measure.proxies import Proxies
from gate.measure.scores import MetricValue
from gate.measure.sizes import FileSizes
from gate.optimize import Stage
from gate.optimize.metrics import WeightStats

TYPES: dict[str, type] = {cls.__name__: cls for cls in (
    BridgeCheck, Converted, EvalResult, FileSizes, MetricValue, ModelFacts, Proxies, Stage, TensorSpec, WeightStats)}


class RecordError(ValueError):
    """A record that is not what `encode` writes."""


def encode(obj: Any, blobs: dict[str, bytes]) -> Any:
    """`obj` as JSON-ready data; bytes and arrays go into `blobs` (name -> content)."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (bytes, bytearray)):
        return {"$bytes": _blob(blobs, bytes(obj), "bin")}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise RecordError("object arrays are not stored")
        buf = io.BytesIO()
        np.save(buf, obj, allow_pickle=False)
        return {"$array": _blob(blobs, buf.getvalue(), "npy")}
    if dataclasses.is_dataclass(obj) and type(obj).__name__ in TYPES:
        return {"$type": type(obj).__name__,
                "fields": {f.name: encode(getattr(obj, f.name), blobs) for f in dataclasses.fields(obj)}}
    if isinstance(obj, tuple):
        return {"$tuple": [encode(v, blobs) for v in obj]}
    if isinstance(obj, list):
        return [encode(v, blobs) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return {"$set": sorted(encode(v, blobs) for v in obj)}
    if isinstance(obj, dict) or hasattr(obj, "items"):
        return {"$map": [[encode(k, blobs), encode(v, blobs)] for k, v in obj.items()]}
    raise RecordError(f"cannot store a {type(obj).__name__}")


def decode(data: Any, blobs: dict[str, bytes]) -> Any:
    """The object `encode` wrote; RecordError for anything else."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(v, blobs) for v in data]
    if not isinstance(data, dict) or len(data) not in (1, 2):
        raise RecordError(f"unexpected {type(data).__name__} in a record")
    if "$type" in data:
        cls = TYPES.get(data["$type"]) if isinstance(data["$type"], str) else None
        fields = data.get("fields")
        names = {f.name for f in dataclasses.fields(cls)} if cls else set()
        if cls is None or not isinstance(fields, dict) or set(fields) != names:
            raise RecordError(f"not a stored type: {str(data.get('$type'))[:80]}")
        return cls(**{k: decode(v, blobs) for k, v in fields.items()})
    (tag, value), = data.items()
    if tag == "$bytes":
        return _get(blobs, value)
    if tag == "$array":
        return np.load(io.BytesIO(_get(blobs, value)), allow_pickle=False)
    if tag == "$tuple" and isinstance(value, list):
        return tuple(decode(v, blobs) for v in value)
    if tag == "$set" and isinstance(value, list):
        return {decode(v, blobs) for v in value}
    if tag == "$map" and isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        return {decode(k, blobs): decode(v, blobs) for k, v in value}
    raise RecordError(f"unexpected tag {tag[:40]!r} in a record")


def _blob(blobs: dict[str, bytes], content: bytes, ext: str) -> str:
    name = f"blob{len(blobs)}.{ext}"
    blobs[name] = content
    return name


def _get(blobs: dict[str, bytes], name: Any) -> bytes:
    if not isinstance(name, str) or name not in blobs:
        raise RecordError(f"missing blob {str(name)[:40]}")
    return blobs[name]
