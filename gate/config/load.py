"""gate.yml and policy files -> one validated, typed, frozen GateConfig (no TF).

A policy is a preset name (policies/*.yml, shipped in the wheel as gate.presets), a
path relative to gate.yml, or an inline mapping. Policies may `extends:` another one
and override its fields. Every error names the file, the field path and the line.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gate.errors import ConfigError, PolicyError
from gate.formats import MODEL_FILE_FORMATS, SAVEDMODEL_MARKER, format_of
from gate.config.schema import ConfigFile, Policy
from gate.config.yamlio import Loc, YamlDoc, parse_yaml, read_yaml

DEFAULT_CONFIG = "gate.yml"
MAX_EXTENDS_DEPTH = 10


@dataclass(frozen=True)
class ResolvedPolicy:
    name: str          # preset name, file path, or "inline"
    source: str        # where it was read from
    chain: tuple[str, ...]  # the extends chain, most derived first
    policy: Policy

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "chain": list(self.chain),
                **self.policy.model_dump(mode="json", exclude={"extends"})}


@dataclass(frozen=True)
class GateConfig:
    path: Path                 # gate.yml
    root: Path                 # directory paths are resolved against
    file: ConfigFile           # as validated
    model_path: Path
    train_path: Path | None
    eval_path: Path
    policy: ResolvedPolicy | None
    sha256: str                # of gate.yml's bytes, for provenance

    @property
    def thresholds(self):
        return self.file.thresholds

    @property
    def benchmark(self):
        return self.file.benchmark

    @property
    def evaluate(self):
        return self.file.evaluate


# ---------------------------------------------------------------- presets

def _presets_dir():
    return resources.files("gate") / "presets"


def preset_names() -> list[str]:
    return sorted(p.name[:-4] for p in _presets_dir().iterdir() if p.name.endswith(".yml"))


def _preset_text(name: str) -> str:
    return (_presets_dir() / f"{name}.yml").read_text(encoding="utf-8")


def looks_like_preset(ref: str) -> bool:
    return "/" not in ref and "\\" not in ref and not ref.endswith((".yml", ".yaml"))


# ---------------------------------------------------------------- errors

def _field(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(err: dict, schema_cmd: str) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown key (check the spelling; `{schema_cmd}` lists the keys)"
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
                     error_type: type[ConfigError] = ConfigError) -> None:
    problems: list[tuple[str, int | None, str]] = []
    for err in exc.errors():
        loc = prefix + _clean_loc(err["loc"], data)
        schema_cmd = "gate policy schema" if error_type is PolicyError else "gate policy schema --config"
        item = (_field(loc), doc.line_of(loc), _describe(err, schema_cmd))
        if item not in problems:
            problems.append(item)
    field, line, text = problems[0]
    if len(problems) > 1:
        listed = [f"{doc.file}:{ln}: " if ln else f"{doc.file}: " for _, ln, _ in problems]
        text = f"{len(problems)} problems:\n  " + "\n  ".join(
            f"{where}{f or '(top level)'}: {t}" for where, (f, _, t) in zip(listed, problems))
    raise error_type(text, file=doc.file, field=field or None, line=line) from None


# ---------------------------------------------------------------- policies

def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load_policy_doc(ref: str, base_dir: Path, *, field_doc: YamlDoc | None, field: Loc) -> tuple[YamlDoc, str, Path]:
    """Read a policy given by preset name or path; return (doc, display name, its dir)."""
    if looks_like_preset(ref):
        if ref not in preset_names():
            known = ", ".join(preset_names())
            raise PolicyError(f"unknown preset {ref!r}; known presets: {known}",
                              file=field_doc.file if field_doc else None, field=_field(field),
                              line=field_doc.line_of(field) if field_doc else None,
                              hint="or give a path to a policy YAML file")
        return parse_yaml(_preset_text(ref), f"preset:{ref}"), ref, base_dir
    try:
        path = (base_dir / ref).resolve()
        is_file = path.is_file()
    except (OSError, ValueError) as exc:  # NUL byte, lone surrogate, name too long
        raise PolicyError(f"unusable policy path {ref!r}: {getattr(exc, 'strerror', None) or exc}",
                          file=field_doc.file if field_doc else None, field=_field(field),
                          line=field_doc.line_of(field) if field_doc else None) from None
    if not is_file:
        raise PolicyError(f"policy file not found: {path}",
                          file=field_doc.file if field_doc else None, field=_field(field),
                          line=field_doc.line_of(field) if field_doc else None)
    return read_yaml(path, kind="policy"), str(path), path.parent


def _expand(data: Any, doc: YamlDoc, prefix: Loc, base_dir: Path, seen: tuple[str, ...]) -> tuple[dict, YamlDoc, Loc, tuple[str, ...]]:
    """Resolve `extends` recursively. Returns the merged mapping, the doc/loc where
    the most derived fields stand (for error lines) and the chain of names."""
    if not isinstance(data, dict):
        raise PolicyError(f"a policy must be a mapping, got {type(data).__name__}",
                          file=doc.file, field=_field(prefix) or None, line=doc.line_of(prefix))
    parent_ref = data.get("extends")
    if parent_ref is None:
        return data, doc, prefix, ()
    if not isinstance(parent_ref, str):
        raise PolicyError("extends must be a preset name or a path", file=doc.file,
                          field=_field(prefix + ("extends",)), line=doc.line_of(prefix + ("extends",)))
    parent_doc, parent_name, parent_dir = _load_policy_doc(parent_ref, base_dir, field_doc=doc, field=prefix + ("extends",))
    if len(seen) >= MAX_EXTENDS_DEPTH or parent_name in seen:
        raise PolicyError(f"extends cycle or chain too deep: {' -> '.join(seen + (parent_name,))}",
                          file=doc.file, field=_field(prefix + ("extends",)), line=doc.line_of(prefix + ("extends",)))
    parent, _, _, grandparents = _expand(parent_doc.data, parent_doc, (), parent_dir, seen + (parent_name,))
    _validate_policy(parent, parent_doc, ())  # a broken parent is reported in its own file
    merged = _deep_merge({k: v for k, v in parent.items() if k != "extends"}, data)
    return merged, doc, prefix, (parent_name,) + grandparents


def _validate_policy(data: dict, doc: YamlDoc, prefix: Loc) -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise_validation(exc, doc, data, prefix, error_type=PolicyError)
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


# ---------------------------------------------------------------- gate.yml



def _existing(doc: YamlDoc, root: Path, value: str, loc: Loc, *, what: str, allow_dir: bool = False) -> Path:
    try:
        path = (root / value).resolve()
        exists = path.exists()
    except (OSError, ValueError) as exc:  # NUL byte, lone surrogate, name too long
        raise ConfigError(f"unusable {what} path {value!r}: {getattr(exc, 'strerror', None) or exc}",
                          file=doc.file, field=_field(loc), line=doc.line_of(loc)) from None
    if not exists:
        raise ConfigError(f"{what} not found: {path}", file=doc.file, field=_field(loc), line=doc.line_of(loc),
                          hint="paths are relative to the directory of gate.yml")
    if path.is_dir() and not allow_dir:
        raise ConfigError(f"{what} is a directory, expected a file: {path}", file=doc.file,
                          field=_field(loc), line=doc.line_of(loc))
    return path


def load_config(path: str | Path = DEFAULT_CONFIG) -> GateConfig:
    path = Path(path)
    doc = read_yaml(path, kind="config")
    if not isinstance(doc.data, dict):
        got = "an empty file" if doc.data is None else f"a {type(doc.data).__name__}"
        raise ConfigError(f"expected a mapping with keys model, data, policy, thresholds; got {got}",
                          file=doc.file)
    policy_value = doc.data.get("policy")
    if policy_value is not None and not isinstance(policy_value, (str, dict)):
        raise ConfigError("policy must be a preset name, a path to a policy file, or a mapping; got "
                          f"{type(policy_value).__name__}", file=doc.file, field="policy",
                          line=doc.line_of(("policy",)))
    try:
        cfg = ConfigFile.model_validate(doc.data)
    except ValidationError as exc:
        raise_validation(exc, doc, doc.data)
    root = path.resolve().parent
    model_path = _existing(doc, root, cfg.model, ("model",), what="model", allow_dir=True)
    if model_path.is_dir() and not (model_path / SAVEDMODEL_MARKER).exists():
        raise ConfigError(f"model directory is not a SavedModel (no saved_model.pb): {model_path}",
                          file=doc.file, field="model", line=doc.line_of(("model",)))
    if model_path.is_file() and format_of(model_path) is None:
        raise ConfigError(f"expected a model file ending in {', '.join(MODEL_FILE_FORMATS)} or a SavedModel "
                          f"directory; received {model_path.name}", file=doc.file, field="model",
                          line=doc.line_of(("model",)))
    eval_path = _existing(doc, root, cfg.data.eval, ("data", "eval"), what="eval data")
    train_path = (_existing(doc, root, cfg.data.train, ("data", "train"), what="train data")
                  if cfg.data.train else None)
    is_tflite = model_path.suffix.lower() == ".tflite"
    policy = None
    if cfg.policy is not None:
        policy = resolve_policy(cfg.policy, doc=doc, base_dir=root)
    elif not is_tflite:
        raise ConfigError("required but missing: a Keras model needs a policy (a preset name, a path or "
                          "an inline mapping)", file=doc.file, field="policy",
                          hint="e.g. `policy: int8`; `gate policy list` shows the presets")
    if policy and policy.policy.convert.quantization.value in ("int8", "int16x8") and train_path is None:
        raise ConfigError(f"quantization: {policy.policy.convert.quantization.value} calibrates on the train "
                          "split, but data.train is not set", file=doc.file, field="data.train",
                          line=doc.line_of(("data",)))
    acc = cfg.thresholds.accuracy
    if acc and acc.top_k not in cfg.evaluate.top_k:
        cfg = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(
            update={"top_k": sorted(set(cfg.evaluate.top_k) | {acc.top_k})})})
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return GateConfig(path=path.resolve(), root=root, file=cfg, model_path=model_path, train_path=train_path,
                      eval_path=eval_path, policy=policy, sha256=sha)


def config_summary(cfg: GateConfig) -> dict:
    """The config as recorded in the report (paths relative to the config's directory)."""
    def rel(p: Path | None) -> str | None:
        if p is None:
            return None
        try:
            return str(p.relative_to(cfg.root))
        except ValueError:
            return str(p)
    return {
        "path": str(cfg.path), "sha256": cfg.sha256, "model": rel(cfg.model_path),
        "data": {"train": rel(cfg.train_path), "eval": rel(cfg.eval_path)},
        "thresholds": json.loads(cfg.thresholds.model_dump_json(exclude_none=True)),
        "benchmark": cfg.benchmark.model_dump(mode="json"),
        "evaluate": cfg.evaluate.model_dump(mode="json"),
    }
