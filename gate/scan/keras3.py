"""Keras 3 files, read as data: which Keras wrote a .keras / .h5 (`keras_flavour`), and
the walk of a Keras 3 config tree against exact (module, class) pairs
(`walk_keras3_config`, table: gate.scan.keras3_allowlist).

Keras 3 resolves a config object by its `module` string: a public `keras.*` namespace, or
any importable module of keras / keras_hub / keras_cv / keras_nlp that defines a
KerasSaveable. So the module must be one Keras 3 writes for built-ins and the class one
of that module's built-ins; a class without a module was defined in `__main__` (custom
code), a registered_name other than the class name is a registered custom object.
Standard library only.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from gate.errors import ModelError
from gate.scan.keras3_allowlist import EXCLUDED, KERAS3_CLASSES, KERAS3_FUNCTIONS
from gate.scan.limits import TRUST_HINT, ScanLimits
from gate.scan.tree import visit_dicts

KERAS3 = "keras3"
TF_KERAS = "tf_keras"

# Values Keras 3 decodes into data, never into classes (keras/src/saving/serialization_lib.py).
DATA_MARKERS = frozenset({"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__slice__",
                          "__ellipsis__", "__tuple__"})
TYPE_SPECS = frozenset({"TensorSpec", "RaggedTensorSpec", "SparseTensorSpec"})
FUNCTION_MODULES = frozenset({None, "builtins", "keras.activations", "keras.losses", "keras.metrics"})
CODE_CLASSES = {"Lambda": "Lambda layers run arbitrary Python code when loaded"}
CODE_KEYS = frozenset({"__lambda__", "__python_function__", "function_type"})
LAYER_KEYS = frozenset({"layers", "layer", "forward_layer", "backward_layer", "cell", "cells"})
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ALL_CLASSES = frozenset().union(*KERAS3_CLASSES.values())
_OPS_MODULE = "keras.src.ops."
HINT = ("this is a Keras 3 file (saved with `import keras`): the gate loads Keras 3 built-in classes "
        "only; rebuild the model from built-in layers")


def flavour_of(version: str | None, config: Any) -> str:
    """'keras3' or 'tf_keras', from the saving Keras version confirmed by the config's
    shape; raises ValueError (with why) when they disagree or neither tells."""
    by_version = None
    if isinstance(version, str):
        by_version = KERAS3 if version.startswith("3.") else TF_KERAS if version.startswith("2.") else None
    by_shape = _flavour_by_shape(config)
    if by_version and by_shape and by_version != by_shape:
        raise ValueError(f"the file says it was saved by Keras {version}, but its config is written in "
                         f"{'Keras 3' if by_shape == KERAS3 else 'tf_keras (Keras 2)'}'s dialect")
    return by_version or by_shape or TF_KERAS


def _flavour_by_shape(config: Any) -> str | None:
    text = json.dumps(config)
    if '"DTypePolicy"' in text or '"__keras_tensor__"' in text or '"batch_shape"' in text:
        return KERAS3
    if '"batch_input_shape"' in text or '"tf_keras.' in text:
        return TF_KERAS
    return None


@dataclass
class Keras3Walk:
    file: str
    where: str
    trust: bool
    limits: ScanLimits
    legacy_h5: bool = False       # a Keras 3 .h5 model_config: layers carry no module
    layer_classes: set[str] = field(default_factory=set)
    n_layers: int = 0
    notes: list[str] = field(default_factory=list)

    def classes(self) -> tuple[str, ...]:
        return tuple(sorted(self.layer_classes))

    def refuse(self, what: str, why: str, hint: str = HINT) -> None:
        raise ModelError(f"Keras 3 file: {what} is not allowed: {why}", file=self.file, field=self.where, hint=hint)


def walk_keras3_config(config: Any, *, file: str, where: str, trust: bool, limits: ScanLimits,
                       legacy_h5: bool = False, root_is_model: bool = True) -> Keras3Walk:
    walk = Keras3Walk(file, where, trust, limits, legacy_h5)
    if root_is_model:
        if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
            raise ModelError(f"Keras 3 file: {where} does not describe a Keras object (no class_name at the top)",
                             file=file, field=where)
        walk.layer_classes.add(config["class_name"])
    _visit(config, walk)
    return walk


def _visit(config: Any, walk: Keras3Walk) -> None:
    def on_dict(node: dict, path: str, parent_key: str | None) -> None:
        if "class_name" in node:
            _check_object(node, path, walk)
            if parent_key in LAYER_KEYS:
                walk.n_layers += 1
                walk.layer_classes.add(str(node["class_name"]))
        for key in CODE_KEYS.intersection(node):
            _code(walk, f"key '{key}' at {path or 'the top level'}", "it holds serialized Python code")

    def too_deep(path: str) -> None:
        raise ModelError(f"Keras 3 file: config nests deeper than {walk.limits.max_depth} levels at {path}",
                         file=walk.file, field=walk.where)

    visit_dicts(config, max_depth=walk.limits.max_depth, on_dict=on_dict, too_deep=too_deep)


def _clip(value: object, limit: int = 100) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _describe(node: dict, path: str) -> str:
    cfg = node.get("config")
    name = node.get("name") or (cfg.get("name") if isinstance(cfg, dict) else None)
    label = f"layer '{_clip(name)}' " if isinstance(name, str) else ""
    return f"{label}(class {_clip(node.get('class_name'))}) at {path or 'the top level'}"


def _code(walk: Keras3Walk, what: str, why: str) -> None:
    if walk.trust:
        walk.notes.append(f"{what} carries code; allowed because trust_model_code is set")
        return
    walk.refuse(what, why, TRUST_HINT)


def _check_object(node: dict, path: str, walk: Keras3Walk) -> None:
    cls, module, registered = node["class_name"], node.get("module"), node.get("registered_name")
    if not isinstance(cls, str):
        raise ModelError(f"Keras 3 file: class_name at {path or 'the top level'} is not a string",
                         file=walk.file, field=walk.where)
    if cls in DATA_MARKERS:
        return
    if cls == "__lambda__":
        return _code(walk, f"serialized Python lambda at {path}", "it is Python bytecode that runs when loaded")
    if cls == "__typespec__":
        if not (node.get("spec_name") in TYPE_SPECS and isinstance(module, str)
                and module.startswith("tensorflow.python.")):
            walk.refuse(f"type spec '{_clip(node.get('spec_name'))}' at {path}", "not a TensorFlow tensor spec")
        return
    if cls == "function":
        return _check_function(node, path, walk)
    what = _describe(node, path)
    if not _IDENT.match(cls):
        walk.refuse(what, f"'{_clip(cls)}' is not a class name (dotted names can point at arbitrary Python)")
    if cls in CODE_CLASSES:
        return _code(walk, what, CODE_CLASSES[cls])
    if cls in EXCLUDED:
        walk.refuse(what, EXCLUDED[cls])
    if module is None:
        if not walk.legacy_h5:
            walk.refuse(what, "it has no module: Keras wrote a class defined in the saving script (__main__), "
                              "which needs Python code the gate does not load")
        elif cls not in _ALL_CLASSES:
            walk.refuse(what, f"'{_clip(cls)}' is not a Keras 3 built-in class")
    elif not isinstance(module, str):
        walk.refuse(what, "its module is not a string")
    elif module not in KERAS3_CLASSES:
        walk.refuse(what, f"module '{_clip(module)}' is not one Keras 3 writes for built-ins (Keras would "
                          "import it)")
    elif cls not in KERAS3_CLASSES[module]:
        walk.refuse(what, f"'{_clip(cls)}' is not a Keras 3 built-in of module '{_clip(module)}'")
    if registered is not None and registered != cls:
        walk.refuse(what, f"registered_name '{_clip(registered)}' names a registered custom object")


def _check_function(node: dict, path: str, walk: Keras3Walk) -> None:
    fn, module, registered = node.get("config"), node.get("module"), node.get("registered_name")
    what = f"function reference '{_clip(fn)}' at {path}"
    if module not in FUNCTION_MODULES:
        walk.refuse(what, f"module '{_clip(module)}' is outside builtins and keras.activations/losses/metrics")
    if not isinstance(fn, str) or fn not in KERAS3_FUNCTIONS:
        walk.refuse(what, "only built-in Keras activations, losses and metrics may be referenced",
                    "custom functions need Python code the gate does not load")
    if registered not in (None, "function", fn):
        walk.refuse(what, f"registered_name '{_clip(registered)}' does not match")
