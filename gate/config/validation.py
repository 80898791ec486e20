"""Pydantic validation errors -> ConfigError/PolicyError naming the file, the field path
and its line in the YAML."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from gate.config.suggest import unknown_key
from gate.config.yamlio import Loc, YamlDoc
from gate.errors import ConfigError


def field_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(err: dict, loc: Loc, model: type[BaseModel] | None) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return unknown_key(model, loc)
    if err["type"] in ("model_type", "dict_type") and err.get("input") is None:
        return "is empty; remove the key or give it a mapping"
    if err["type"] in ("model_type", "dict_type"):
        return f"expected a mapping, got {type(err.get('input')).__name__} {err.get('input')!r}"
    if err["type"] == "missing":
        return "required but missing"
    if "input" in err and err["type"] not in ("model_type", "dict_type"):
        return f"{msg} (got {err['input']!r})"
    return msg


def _clean_loc(loc: tuple, data: Any) -> Loc:
    """Keep the parts of a pydantic loc that are real keys/indexes of the data (drops
    union and validator tags); a last key absent from a mapping is a missing/extra key."""
    out: list = []
    cur = data
    for i, part in enumerate(loc):
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif i == len(loc) - 1 and isinstance(cur, dict) and isinstance(part, str) and "[" not in part:
            out.append(part)
    return tuple(out)


def raise_validation(exc: ValidationError, doc: YamlDoc, data: Any, prefix: Loc = (), *,
                     error_type: type[ConfigError] = ConfigError, model: type[BaseModel] | None = None) -> None:
    """`model` is the class `data` was validated as (its keys are listed for an unknown key)."""
    problems: list[tuple[str, int | None, str]] = []
    for err in exc.errors():
        inner = _clean_loc(err["loc"], data)
        loc = prefix + inner
        item = (field_path(loc), doc.line_of(loc), _describe(err, inner, model))
        if item not in problems:
            problems.append(item)
    field, line, text = problems[0]
    if len(problems) > 1:
        listed = [f"{doc.file}:{ln}: " if ln else f"{doc.file}: " for _, ln, _ in problems]
        text = f"{len(problems)} problems:\n  " + "\n  ".join(
            f"{where}{f or '(top level)'}: {t}" for where, (f, _, t) in zip(listed, problems))
    raise error_type(text, file=doc.file, field=field or None, line=line) from None
