"""`models:` in gate.yml: several models in one config. Each entry has what a single config
has (model, data, policy, thresholds, ...); the top-level keys are defaults every entry
inherits, merged key by key (mappings recursively, so one `thresholds:` block serves all
and an entry overrides single limits). `policy` is the exception: an entry's policy
replaces the default whole (two half policies do not make one). No TF here.

    thresholds: {accuracy: {min: 0.9, max_drop: 0.01}}
    models:
      detector:   {model: det.keras, data: {eval: det.npz}, policy: int8}
      classifier: {model: cls.tflite, data: {eval: cls.npz}, thresholds: {accuracy: {max_drop: 0.02}}}

Duplicate names are refused by the YAML reader (gate.config.yamlio), with both lines.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from gate.config.yamlio import Loc, YamlDoc
from gate.errors import ConfigError

MODELS_KEY = "models"
REPLACED_WHOLE = frozenset({"policy"})
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")   # a directory and artifact name
RESERVED = frozenset({"report.json", "report.md", "pr.json", "candidate.tflite"})   # files next to the reports


def is_multi(data: Any) -> bool:
    return isinstance(data, dict) and MODELS_KEY in data


def model_names(doc: YamlDoc) -> list[str]:
    """The names under `models:`, in file order, validated; [] for a single-model config."""
    if not is_multi(doc.data):
        return []
    models = doc.data[MODELS_KEY]
    where = {"file": doc.file, "field": MODELS_KEY, "line": doc.line_of((MODELS_KEY,))}
    if not isinstance(models, dict) or not models:
        got = "nothing" if not models else f"a {type(models).__name__}"
        raise ConfigError(f"expected a mapping of model names to model configs, got {got}", **where,
                          hint="e.g. `models: {detector: {model: det.keras, data: {eval: det.npz}}}`")
    if "model" in doc.data:
        raise ConfigError("a top-level `model:` next to `models:` is ambiguous: each entry names its own model",
                          file=doc.file, field="model", line=doc.line_of(("model",)),
                          hint="move `model:` into the entries under `models:`")
    for name, entry in models.items():
        field = f"{MODELS_KEY}.{name}"
        if not isinstance(name, str) or not NAME_RE.match(name) or name in RESERVED:
            raise ConfigError(f"expected a model name of letters, digits, '.', '_', '-' (at most 64, not starting "
                              f"with '.' or '-'; not {', '.join(sorted(RESERVED))}); got {name!r}",
                              file=doc.file, field=field,
                              line=doc.line_of((MODELS_KEY, name)),
                              hint="the name becomes a directory (gate-report/NAME/) and a matrix value")
        if not isinstance(entry, dict):
            raise ConfigError(f"expected a mapping (model, data, policy, ...), got {type(entry).__name__}",
                              file=doc.file, field=field, line=doc.line_of((MODELS_KEY, name)))
    return list(models)


def merge(defaults: Any, override: Any, key: str | None = None) -> Any:
    """`override` on top of `defaults`: mappings key by key, recursively; anything else
    (and `policy`) replaced whole."""
    if key in REPLACED_WHOLE or not (isinstance(defaults, dict) and isinstance(override, dict)):
        return override
    out = dict(defaults)
    for k, v in override.items():
        out[k] = merge(defaults[k], v, k) if k in defaults else v
    return out


def unknown_model(doc: YamlDoc, name: str, names: list[str]) -> ConfigError:
    return ConfigError(f"no model named {name!r}; gate.yml's models are: {', '.join(names)}", file=doc.file,
                       field=MODELS_KEY, line=doc.line_of((MODELS_KEY,)),
                       hint="`gate models` lists them")


def entry_doc(doc: YamlDoc, name: str) -> YamlDoc:
    """The single-model config of entry `name`: the defaults merged with the entry, each key
    keeping the line where it was written (the entry's, or the default's)."""
    names = model_names(doc)
    if name not in names:
        raise unknown_model(doc, name, names)
    defaults = {k: v for k, v in doc.data.items() if k != MODELS_KEY}
    data = merge(defaults, doc.data[MODELS_KEY][name])
    lines: dict[Loc, int] = {loc: line for loc, line in doc.lines.items() if loc[:1] != (MODELS_KEY,) and loc}
    prefix = (MODELS_KEY, name)
    lines.update({loc[2:]: line for loc, line in doc.lines.items() if loc[:2] == prefix and len(loc) > 2})
    return YamlDoc(data, lines, doc.file, doc.sha256)


def entry_sha256(data: Any) -> str:
    """The digest of one model's config as merged (what `gate models --changed` compares)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
