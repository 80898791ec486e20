"""Policies: a preset name (policies/*.yml, shipped in the wheel as gate.presets), a path
relative to gate.yml, or an inline mapping. A policy may `extends:` another one and
override its fields; every error names the file, the field path and the line.

How a child merges with its parent: mappings key by key, scalars and lists replaced --
except `steps`, which merge by position: the child's i-th entry must name the same step
kind as the parent's i-th and its fields merge into it (mappings key by key); a shorter
child list keeps the parent's remaining steps, a longer one appends. `replace_steps: true`
replaces the parent's steps with the child's list instead."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gate.config.schema import Policy
from gate.config.validation import field_path, raise_validation
from gate.config.yamlio import Loc, YamlDoc, parse_yaml, read_yaml
from gate.errors import PolicyError

MAX_EXTENDS_DEPTH = 10


@dataclass(frozen=True)
class ResolvedPolicy:
    name: str          # preset name, file path, or "inline"
    source: str        # where it was read from
    chain: tuple[str, ...]  # the extends chain, most derived first
    policy: Policy

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "chain": list(self.chain), **policy_data(self.policy)}


def policy_data(policy: Policy) -> dict:
    """The resolved policy as plain data that validates as a policy file again (`gate policy
    show`): `extends` applied and dropped, each step with only its own kind."""
    data = policy.model_dump(mode="json", exclude={"extends", "replace_steps"})
    data["steps"] = [{kind: spec for kind, spec in step.items() if spec is not None} for step in data["steps"]]
    return data



def _presets_dir():
    return resources.files("gate") / "presets"


def preset_names() -> list[str]:
    return sorted(p.name[:-4] for p in _presets_dir().iterdir() if p.name.endswith(".yml"))


def _preset_text(name: str) -> str:
    return (_presets_dir() / f"{name}.yml").read_text(encoding="utf-8")


def looks_like_preset(ref: str) -> bool:
    return "/" not in ref and "\\" not in ref and not ref.endswith((".yml", ".yaml"))


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_steps(parent: list, child: list, doc: YamlDoc, prefix: Loc) -> list:
    """Steps merged by position (module docstring); malformed entries are left to validation."""
    out = copy.deepcopy(parent)
    for i, entry in enumerate(child):
        if i >= len(parent):
            out.append(copy.deepcopy(entry))
            continue
        base = parent[i]
        if not (isinstance(entry, dict) and len(entry) == 1 and isinstance(base, dict) and len(base) == 1):
            out[i] = copy.deepcopy(entry)
            continue
        (kind, spec), (base_kind, base_spec) = next(iter(entry.items())), next(iter(base.items()))
        if kind != base_kind:
            loc = prefix + ("steps", i)
            raise PolicyError(f"steps[{i}] is a {kind} step where the parent policy's steps[{i}] is {base_kind}: "
                              "an extending policy's steps merge by position with its parent's",
                              file=doc.file, field=field_path(loc), line=doc.line_of(loc),
                              hint=f"give steps[{i}] as {base_kind}: {{...}} to change it, or set replace_steps: true "
                                   "to replace the parent's steps with this list")
        spec = {} if spec is None else spec
        out[i] = {kind: _deep_merge(base_spec or {}, spec) if isinstance(spec, dict) else copy.deepcopy(spec)}
    return out


def _merge_policy(parent: dict, child: dict, doc: YamlDoc, prefix: Loc) -> dict:
    parent = {k: v for k, v in parent.items() if k not in ("extends", "replace_steps")}
    merged = _deep_merge(parent, {k: v for k, v in child.items() if k not in ("steps", "replace_steps")})
    if "steps" in child:
        steps, inherited = child["steps"], parent.get("steps")
        merged["steps"] = (copy.deepcopy(steps) if child.get("replace_steps") is True or not isinstance(steps, list)
                           or not isinstance(inherited, list) else _merge_steps(inherited, steps, doc, prefix))
    if "replace_steps" in child:
        merged["replace_steps"] = child["replace_steps"]   # validated (a bool) with the rest
    return merged


def _load_policy_doc(ref: str, base_dir: Path, *, field_doc: YamlDoc | None, field: Loc) -> tuple[YamlDoc, str, Path]:
    """Read a policy given by preset name or path; return (doc, display name, its dir)."""
    if looks_like_preset(ref):
        if ref not in preset_names():
            known = ", ".join(preset_names())
            raise PolicyError(f"unknown preset {ref!r}; known presets: {known}",
                              file=field_doc.file if field_doc else None, field=field_path(field),
                              line=field_doc.line_of(field) if field_doc else None,
                              hint="or give a path to a policy YAML file")
        return parse_yaml(_preset_text(ref), f"preset:{ref}"), ref, base_dir
    try:
        path = (base_dir / ref).resolve()
        is_file = path.is_file()
    except (OSError, ValueError) as exc:  # NUL byte, lone surrogate, name too long
        raise PolicyError(f"unusable policy path {ref!r}: {getattr(exc, 'strerror', None) or exc}",
                          file=field_doc.file if field_doc else None, field=field_path(field),
                          line=field_doc.line_of(field) if field_doc else None) from None
    if not is_file:
        raise PolicyError(f"policy file not found: {path}",
                          file=field_doc.file if field_doc else None, field=field_path(field),
                          line=field_doc.line_of(field) if field_doc else None)
    return read_yaml(path, kind="policy"), str(path), path.parent


def _expand(data: Any, doc: YamlDoc, prefix: Loc, base_dir: Path, seen: tuple[str, ...]) -> tuple[dict, YamlDoc, Loc, tuple[str, ...]]:
    """Resolve `extends` recursively. Returns the merged mapping, the doc/loc where
    the most derived fields stand (for error lines) and the chain of names."""
    if not isinstance(data, dict):
        raise PolicyError(f"a policy must be a mapping, got {type(data).__name__}",
                          file=doc.file, field=field_path(prefix) or None, line=doc.line_of(prefix))
    parent_ref = data.get("extends")
    if parent_ref is None:
        return data, doc, prefix, ()
    if not isinstance(parent_ref, str):
        raise PolicyError("extends must be a preset name or a path", file=doc.file,
                          field=field_path(prefix + ("extends",)), line=doc.line_of(prefix + ("extends",)))
    parent_doc, parent_name, parent_dir = _load_policy_doc(parent_ref, base_dir, field_doc=doc, field=prefix + ("extends",))
    if len(seen) >= MAX_EXTENDS_DEPTH or parent_name in seen:
        raise PolicyError(f"extends cycle or chain too deep: {' -> '.join(seen + (parent_name,))}",
                          file=doc.file, field=field_path(prefix + ("extends",)), line=doc.line_of(prefix + ("extends",)))
    parent, _, _, grandparents = _expand(parent_doc.data, parent_doc, (), parent_dir, seen + (parent_name,))
    _validate_policy(parent, parent_doc, ())  # a broken parent is reported in its own file
    merged = _merge_policy(parent, data, doc, prefix)
    return merged, doc, prefix, (parent_name,) + grandparents


def _validate_policy(data: dict, doc: YamlDoc, prefix: Loc) -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise_validation(exc, doc, data, prefix, error_type=PolicyError, model=Policy)
        raise  # unreachable


def resolve_policy(value: str | dict, *, doc: YamlDoc, base_dir: Path) -> ResolvedPolicy:
    """A policy from gate.yml's `policy:` value (preset name, path, or inline mapping)."""
    if isinstance(value, str):
        pdoc, name, pdir = _load_policy_doc(value, base_dir, field_doc=doc, field=("policy",))
        merged, mdoc, prefix, chain = _expand(pdoc.data, pdoc, (), pdir, (name,))
        return ResolvedPolicy(name, pdoc.file, (name,) + chain, _validate_policy(merged, mdoc, prefix))
    merged, mdoc, prefix, chain = _expand(value, doc, ("policy",), base_dir, ())
    return ResolvedPolicy("inline", doc.file, ("inline",) + chain, _validate_policy(merged, mdoc, prefix))


def load_policy_file(path: Path) -> ResolvedPolicy:
    """Validate one policy: a preset name (no slash, no .yml) or a file path."""
    if looks_like_preset(str(path)):
        doc, name, pdir = _load_policy_doc(str(path), Path.cwd(), field_doc=None, field=())
        ident = name
    else:
        doc, name, pdir = read_yaml(Path(path), kind="policy"), str(path), Path(path).resolve().parent
        ident = str(Path(path).resolve())
    merged, mdoc, prefix, chain = _expand(doc.data, doc, (), pdir, (ident,))
    return ResolvedPolicy(name, doc.file, (name,) + chain, _validate_policy(merged, mdoc, prefix))
