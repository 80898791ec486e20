"""Walk a Keras config tree (config.json, model_config): every dict with a `class_name`
is something Keras will look up and instantiate, so each must be allowlisted."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gate.errors import ModelError
from gate.scan.allowlist import (
    ALLOWED_CLASSES,
    ALLOWED_EXACT_MODULES,
    ALLOWED_MODULE_ROOTS,
    BUILTIN_FUNCTIONS,
    CODE_KEYS,
    CODE_LAYERS,
    DATA_MARKERS,
    FOREIGN_LAYERS,
    IDENTIFIER,
    LAYER_KEYS,
    PURE_TF_FUNCTIONS,
    PURE_TF_NAME_KWARG,
    REGISTERED_PACKAGES,
    TYPE_SPECS,
)
from gate.scan.limits import TRUST_HINT, ScanLimits
from gate.scan.tree import visit_dicts


@dataclass
class _Walk:
    file: str
    where: str               # "config.json", "model_config", ...
    trust: bool
    limits: ScanLimits
    layer_classes: set[str] = field(default_factory=set)
    n_layers: int = 0
    notes: list[str] = field(default_factory=list)
    pure_configs: set[int] = field(default_factory=set)   # id() of TFOpLambda configs found pure

    def classes(self) -> tuple[str, ...]:
        return tuple(sorted(self.layer_classes))

    def refuse(self, message: str, hint: str | None = None) -> None:
        raise ModelError(message, file=self.file, field=self.where, hint=hint)


def walk_config(config: Any, *, file: str, where: str, trust: bool, limits: ScanLimits,
                 root_is_model: bool = True) -> _Walk:
    walk = _Walk(file, where, trust, limits)
    if root_is_model:
        if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
            walk.refuse(f"{where} does not describe a Keras object (no class_name at the top)")
        walk.layer_classes.add(_strip_package(config["class_name"]))
    _visit(config, walk)
    return walk


def _visit(config: Any, walk: _Walk) -> None:
    def on_dict(node: dict, path: str, parent_key: str | None) -> None:
        if "class_name" in node:
            _check_object(node, path, walk)
            if parent_key in LAYER_KEYS:
                walk.n_layers += 1
                walk.layer_classes.add(_strip_package(node["class_name"]))
        if not walk.trust:
            _check_code_keys(node, path, walk)

    visit_dicts(config, max_depth=walk.limits.max_depth, on_dict=on_dict,
                too_deep=lambda path: walk.refuse(f"config nests deeper than {walk.limits.max_depth} levels at {path}"))


def _describe(obj: dict, path: str) -> str:
    config = obj.get("config")
    name = obj.get("name") or (config.get("name") if isinstance(config, dict) else None)
    what = f"layer '{_clip(name)}'" if isinstance(name, str) else "object"
    return f"{what} (class {_clip(obj.get('class_name'))}) at {path or 'the top level'}"


def _clip(value: object, limit: int = 100) -> str:
    """Keep attacker-controlled strings from flooding error messages."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_object(obj: dict, path: str, walk: _Walk) -> None:
    cls = obj["class_name"]
    if not isinstance(cls, str):
        walk.refuse(f"class_name at {path or 'the top level'} is not a string")
    if cls in DATA_MARKERS:
        return
    if cls in ("__typespec__", "TypeSpec"):
        return _check_typespec(obj, path, walk)
    if cls == "__lambda__":
        return _code_found(walk, f"serialized Python lambda at {path}",
                           "it is Python bytecode that runs when loaded")
    if cls == "function":
        return _check_function_ref(obj, path, walk)

    name = _strip_package(cls)
    if not IDENTIFIER.match(name):
        walk.refuse(f"{_describe(obj, path)} is not allowed: '{_clip(cls)}' is not a Keras class "
                    "name (dotted or non-identifier names can point at arbitrary Python)")
    if name == "TFOpLambda" and _pure_tf_op(obj):
        walk.pure_configs.add(id(obj["config"]))
    elif name in CODE_LAYERS:
        why = CODE_LAYERS[name]
        config = obj.get("config")
        if isinstance(config, dict) and isinstance(config.get("function"), str):
            why += f"; this one calls tf.{_clip(config['function'])}"
            if name == "TFOpLambda" and config["function"] in PURE_TF_FUNCTIONS:
                why += " with arguments that are not tensors or plain numbers"
            elif name == "TFOpLambda":
                why += (" (only pure arithmetic loads without trust: tf."
                        + ", tf.".join(sorted(PURE_TF_FUNCTIONS)) + ")")
        _code_found(walk, _describe(obj, path), why)
    elif name in FOREIGN_LAYERS:
        walk.refuse(f"{_describe(obj, path)} is not allowed: {FOREIGN_LAYERS[name]}")
    elif name not in ALLOWED_CLASSES:
        walk.refuse(f"{_describe(obj, path)} is not allowed: '{_clip(cls)}' is not a built-in "
                    "Keras, tf_keras or tensorflow_model_optimization class",
                    hint="custom classes need Python code the gate does not load; "
                         "rebuild the model from built-in layers")
    _check_module(obj, path, walk)
    _check_registered_name(obj, path, walk)


def _pure_tf_op(obj: dict) -> bool:
    """A TFOpLambda that calls an allowlisted arithmetic function (PURE_TF_FUNCTIONS) on
    tensors of the graph and plain numbers: the layer config holds only its bookkeeping
    keys, and its call arguments (the inbound node's kwargs) are tensor references,
    numbers or null, plus an optional op name."""
    config = obj.get("config")
    if not isinstance(config, dict) or config.get("function") not in PURE_TF_FUNCTIONS:
        return False
    if set(config) - {"name", "trainable", "dtype", "function"}:
        return False
    nodes = obj.get("inbound_nodes")
    return isinstance(nodes, list) and bool(nodes) and all(_pure_operand(n) for n in nodes)


def _pure_operand(value: object) -> bool:
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, list):
        if len(value) in (3, 4) and isinstance(value[0], str) and all(
                isinstance(i, int) and not isinstance(i, bool) for i in value[1:3]):
            return len(value) == 3 or (isinstance(value[3], dict) and _pure_operand(value[3]))   # a tensor
        return all(_pure_operand(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and (
            (k == PURE_TF_NAME_KWARG and (v is None or isinstance(v, str))) or
            (k != PURE_TF_NAME_KWARG and _pure_operand(v))) for k, v in value.items())
    return False


def _strip_package(cls: str) -> str:
    """'Custom>Adam' (tf_keras registered-name style) -> 'Adam'; other packages kept."""
    package, sep, name = cls.partition(">")
    return name if sep and package in REGISTERED_PACKAGES else cls


def _module_allowed(module: str) -> bool:
    return (module in ALLOWED_EXACT_MODULES
            or any(module == root or module.startswith(root + ".")
                   for root in ALLOWED_MODULE_ROOTS))


def _check_module(obj: dict, path: str, walk: _Walk) -> None:
    module = obj.get("module")
    if module is None:
        return
    if not isinstance(module, str) or not _module_allowed(module):
        walk.refuse(f"{_describe(obj, path)} is not allowed: module '{_clip(module)}' is outside "
                    f"{', '.join(ALLOWED_MODULE_ROOTS)} (Keras would import it)")


def _check_registered_name(obj: dict, path: str, walk: _Walk) -> None:
    registered = obj.get("registered_name")
    if registered is None:
        return
    name = _strip_package(registered) if isinstance(registered, str) else None
    if name != _strip_package(obj["class_name"]) and name not in ALLOWED_CLASSES:
        walk.refuse(f"{_describe(obj, path)} is not allowed: registered_name "
                    f"'{_clip(registered)}' is not a built-in Keras, tf_keras or "
                    "tensorflow_model_optimization class")


def _check_function_ref(obj: dict, path: str, walk: _Walk) -> None:
    fn = obj.get("config")
    module = obj.get("module")
    registered = obj.get("registered_name")
    where = f"function reference '{_clip(fn)}' at {path}"
    if module is not None and module != "builtins" and not (
            isinstance(module, str) and _module_allowed(module)):
        walk.refuse(f"{where} is not allowed: module '{_clip(module)}' is outside "
                    f"{', '.join(ALLOWED_MODULE_ROOTS)} (Keras would import it)")
    if not isinstance(fn, str) or fn not in BUILTIN_FUNCTIONS:
        walk.refuse(f"{where} is not allowed: only built-in Keras activations, losses and "
                    "metrics may be referenced",
                    hint="custom functions need Python code the gate does not load")
    if registered not in (None, "function", fn):
        walk.refuse(f"{where} is not allowed: registered_name '{_clip(registered)}' does not "
                    "match")


def _check_typespec(obj: dict, path: str, walk: _Walk) -> None:
    if obj["class_name"] == "TypeSpec":
        spec = str(obj.get("type_spec", "")).removeprefix("tf.")
        ok = spec in TYPE_SPECS
    else:
        module = obj.get("module")
        spec = str(obj.get("spec_name"))
        ok = (spec in TYPE_SPECS and isinstance(module, str)
              and module.startswith("tensorflow.python."))
    if not ok:
        walk.refuse(f"type spec '{_clip(spec)}' at {path} is not allowed")


def _check_code_keys(node: dict, path: str, walk: _Walk) -> None:
    keys = set(CODE_KEYS.intersection(node))
    if id(node) in walk.pure_configs:
        keys.discard("function")      # an allowlisted pure TFOpLambda function name
    for key in keys:
        walk.refuse(f"key '{key}' at {path + '.' if path else ''}{key} references Python "
                    "code, which the gate does not load", hint=TRUST_HINT)


def _code_found(walk: _Walk, what: str, why: str) -> None:
    if walk.trust:
        walk.notes.append(f"{what} carries code; allowed because trust_model_code is set")
        return
    walk.refuse(f"{what} is not allowed: {why}", hint=TRUST_HINT)


def parse_json(data: bytes | str, file: str, where: str) -> Any:
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text)
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{where} is not valid JSON: {e}", file=file, field=where) from None
    except RecursionError:
        raise ModelError(f"{where} is nested too deeply to parse", file=file,
                         field=where) from None
