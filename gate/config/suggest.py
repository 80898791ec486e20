"""An unknown key in gate.yml or a policy: the closest valid key ("did you mean
`max_drop`?") and every key valid at that level, read from the pydantic models (no
pointer to the whole JSON Schema)."""
from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel


def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an annotation: Optional/Union members, Annotated stripped."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [alt for arg in typing.get_args(annotation) for alt in _unwrap(arg)]
    return [annotation]


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _step(annotations: list[Any], part: object) -> list[Any]:
    """Types reached from `annotations` by one key (a field name, a dict key, a list index)."""
    out: list[Any] = []
    for t in annotations:
        if _is_model(t) and isinstance(part, str) and part in t.model_fields:
            out.extend(_unwrap(t.model_fields[part].annotation))
        elif typing.get_origin(t) is dict and isinstance(part, str):
            out.extend(_unwrap(typing.get_args(t)[1]))
        elif typing.get_origin(t) is list and isinstance(part, int):
            out.extend(_unwrap(typing.get_args(t)[0]))
    return out


def keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys a mapping at `loc` (the path of the mapping itself) may have."""
    annotations: list[Any] = [model]
    for part in loc:
        annotations = _step(annotations, part)
    keys: list[str] = []
    for t in annotations:
        if _is_model(t):
            keys.extend(k for k in t.model_fields if k not in keys)
    return keys


def unknown_key(model: type[BaseModel] | None, loc: tuple) -> str:
    """The message for an unknown key at `loc` (its full path)."""
    key = str(loc[-1]) if loc else ""
    valid = keys_at(model, tuple(loc[:-1])) if model is not None else []
    if not valid:
        return "unknown key (check the spelling)"
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    guess = f"did you mean `{close[0]}`? " if close else ""
    return f"unknown key `{key}`: {guess}keys valid here: {', '.join(valid)}"
