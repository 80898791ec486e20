"""Keras 3 -> tf_keras bridge, so that tfmot 0.8.1 (Keras 2 only) can optimize Keras 3 models.

    tfk, notes = to_tf_keras(k3_model)
    check = check_bridge(k3_model, tfk, eval_split)   # same outputs within the tolerance, or BridgeError

The model is rebuilt from its Keras 3 config (config.json's dialect) translated to
tf_keras's, then the weights are copied layer by layer, matched by variable name (kernel,
bias, gamma, moving_mean, ...) or by order, always shape-checked. Built-in layers map one
to one; anything else raises BridgeError naming the layer, its class and what to do.
`check_bridge` then runs both models on eval examples: every output must agree within
BRIDGE_MAX_DIFF x max(1, max |output|) (float32 rounding of a different op order; measured at
most 2.9e-6 relative on MobileNetV2).

Dialect translation (Keras 3.15 -> tf_keras 2.21):
  * dtype: DTypePolicy object -> its name ("float32", "mixed_float16"); quantized
    policies (model.quantize()) are refused.
  * initializers / regularizers / constraints: {"module": "keras.initializers", ...}
    -> {"class_name", "config"}, dropping Keras 3-only keys left at their defaults.
  * InputLayer: batch_shape -> batch_input_shape; optional (False) dropped.
  * any layer: Keras 3-only constructor keys are dropped when null/False/0 (Dense
    quantization_config / lora_rank, RNN seed, ...); a non-default value is refused.
  * Functional: inbound_nodes [{"args": [__keras_tensor__...], "kwargs": {}}] ->
    [[[layer, node, tensor, kwargs], ...]], dropping call kwargs left at None (tf_keras's
    from_config loops forever on {"mask": None}); references to a nested model's outputs
    get node_index + 1 (tf_keras counts the nested model's own Input node).
  * keras.ops nodes (module keras.src.ops.*) have no tf_keras layer: BridgeError.
"""
from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gate.errors import ModelError

BRIDGE_MAX_DIFF = 1e-5
WHAT_TO_DO = ("tfmot steps (prune, cluster, qat, structured_prune) run on tf_keras; a post-training policy "
              "(int8, dynamic-range, float16, or convert: {quantizer: litert, recipe: ...}) converts the Keras 3 "
              "model directly, without the bridge")


class BridgeError(ModelError):
    """A Keras 3 model the bridge cannot rebuild in tf_keras, or rebuilt differently."""

    def __init__(self, message: str, **kwargs):
        kwargs.setdefault("field", "policy.steps")
        kwargs.setdefault("hint", WHAT_TO_DO)
        super().__init__(f"Keras 3 -> tf_keras bridge: {message}", **kwargs)


def _tfk():
    from gate.measure.tfenv import keras

    return keras()


# ---------------------------------------------------------------- config translation

_OBJECT_MODULES = {"keras.initializers": "initializers", "keras.regularizers": "regularizers",
                   "keras.constraints": "constraints"}
_QUANTIZED = {"QuantizedDTypePolicy", "QuantizedFloat8DTypePolicy", "Int4DTypePolicy",
              "GPTQDTypePolicy", "AWQDTypePolicy", "DTypePolicyMap"}
_BASE_LAYER_KEYS = {"name", "trainable", "dtype", "input_shape", "batch_input_shape",
                    "batch_size", "weights", "activity_regularizer", "autocast", "dynamic",
                    "input_dim", "input_length"}
_MODEL_CLASSES = {"Sequential", "Functional", "Model"}
# Keras 3 config keys that tf_keras spells differently, per class.
_RENAMES = {"InputLayer": {"batch_shape": "batch_input_shape"}}


def _is_default(v: Any) -> bool:
    return v is None or v is False or v == 0 or v == [] or v == {}


def _accepted_keys(cls) -> set[str] | None:
    """Constructor keyword names of a tf_keras class (None: accepts **kwargs freely)."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        keys |= {p for p in params if p != "self"}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break   # this __init__ does not forward **kwargs further up
    return keys


def _filter_keys(cfg: dict, cls, what: str, accepted_extra=frozenset()) -> dict:
    accepted = _accepted_keys(cls) | set(accepted_extra)
    out = {}
    for k, v in cfg.items():
        if k in accepted:
            out[k] = v
        elif _is_default(v):
            continue        # a Keras 3-only option left at its default
        else:
            raise BridgeError(f"{what}: option {k}={json.dumps(v)[:80]} has no tf_keras "
                              f"equivalent in {cls.__name__}")
    return out


def _translate_value(v: Any, where: str) -> Any:
    """Nested config values: dtype policies, initializer/regularizer/constraint objects,
    functions, numpy/tensor markers, nested layers."""
    if isinstance(v, list):
        return [_translate_value(x, where) for x in v]
    if not isinstance(v, dict):
        return v
    cls = v.get("class_name")
    if cls is None:
        return {k: _translate_value(x, where) for k, x in v.items()}
    if cls in ("DTypePolicy", "FloatDTypePolicy"):
        return v["config"]["name"]
    if cls in _QUANTIZED:
        raise BridgeError(f"{where}: Keras 3 quantized dtype policy {cls} (model.quantize()) "
                          "has no tf_keras equivalent; commit the float model")
    if cls in ("__numpy__", "__tensor__"):
        return v["config"]["value"]
    if cls == "function":
        return v["config"]
    module = v.get("module")
    if module in _OBJECT_MODULES:
        ns = getattr(_tfk(), _OBJECT_MODULES[module])
        target = getattr(ns, cls, None)
        if target is None:
            raise BridgeError(f"{where}: {module}.{cls} has no tf_keras equivalent")
        cfg = _filter_keys(v.get("config") or {}, target, f"{where} {cls}")
        return {"class_name": cls, "config": cfg}
    if module == "keras.layers" or cls in _MODEL_CLASSES:
        return translate_layer(v, where)
    raise BridgeError(f"{where}: object {module}.{cls} cannot be translated")


def translate_layer(obj: dict, where: str = "") -> dict:
    """One Keras 3 layer object (config.json form) -> tf_keras {"class_name", "config"}."""
    tfk = _tfk()
    cls = obj.get("class_name")
    cfg = obj.get("config") or {}
    name = cfg.get("name") or obj.get("name")
    label = f"layer '{name}' (class {cls})"
    if cls in _MODEL_CLASSES:
        out = {"class_name": "Functional" if cls == "Model" else cls,
               "config": translate_model_config(cls, cfg)}
    else:
        module = obj.get("module")
        if isinstance(module, str) and module.startswith("keras.src.ops."):
            raise BridgeError(f"{label} is a keras.ops call in the graph ({module}); tf_keras has no layer for it",
                              hint="replace the keras.ops call by a layer (Rescaling, Multiply, "
                                   "GlobalAveragePooling1D, ...) to use tfmot steps; " + WHAT_TO_DO)
        if module is not None and module != "keras.layers":
            raise BridgeError(f"{label}: module {module} is not keras.layers (custom layers have no tf_keras layer)")
        target = getattr(tfk.layers, cls, None)
        if target is None or not isinstance(target, type):
            raise BridgeError(f"{label}: tf_keras has no layer {cls}")
        renames = _RENAMES.get(cls, {})
        cfg = {renames.get(k, k): v for k, v in cfg.items()}
        if cls == "InputLayer" and cfg.get("optional") is False:
            cfg.pop("optional")
        cfg = {k: _translate_value(v, label) for k, v in cfg.items()}
        cfg = _filter_keys(cfg, target, label, _BASE_LAYER_KEYS)
        out = {"class_name": cls, "config": cfg}
    if "name" in obj:
        out["name"] = obj["name"]
    if "inbound_nodes" in obj:
        out["inbound_nodes"] = [_translate_node(n, label) for n in obj["inbound_nodes"]]
    return out


def _history(t: dict, label: str) -> list:
    if not (isinstance(t, dict) and t.get("class_name") == "__keras_tensor__"):
        raise BridgeError(f"{label}: call argument {json.dumps(t)[:80]} is not a tensor "
                          "(non-tensor positional arguments are not supported)")
    name, node, index = t["config"]["keras_history"]
    return [name, node, index]


def _translate_node(node: Any, label: str) -> list:
    """Keras 3 {"args": [...], "kwargs": {...}} -> tf_keras [[name, node, tensor, kwargs], ...]."""
    if isinstance(node, list):      # already tf_keras form
        return node
    args = node.get("args", [])
    # Keras 3 records call kwargs left at None (a nested model's mask=None); tf_keras's
    # from_config loops forever on {"mask": None}, so they are dropped.
    kwargs = {k: v for k, v in node.get("kwargs", {}).items() if v is not None}
    for k, v in kwargs.items():
        if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
            raise BridgeError(f"{label}: tensor keyword argument '{k}' is not supported")
    if len(args) == 1 and isinstance(args[0], list):      # merge layers: one list argument
        return [_history(t, label) + [kwargs] for t in args[0]]
    if len(args) != 1:
        raise BridgeError(f"{label}: called with {len(args)} positional arguments")
    return [_history(args[0], label) + [kwargs]]


def translate_model_config(cls: str, cfg: dict) -> dict:
    """The `config` of a Keras 3 Sequential / Functional -> tf_keras's."""
    if cls == "Sequential":
        return {"name": cfg.get("name"),
                "layers": [translate_layer(l, f"{cfg.get('name')}.layers[{i}]")
                           for i, l in enumerate(cfg["layers"])]}
    layers = [translate_layer(l, f"{cfg.get('name')}.layers[{i}]")
              for i, l in enumerate(cfg["layers"])]
    # A nested model's first node in tf_keras is its own internal Input node, so tf_keras
    # numbers the outer calls from 1 where Keras 3 numbers them from 0.
    nested = {l["name"] for l in layers if l["class_name"] in _MODEL_CLASSES}
    for l in layers:
        for node in l.get("inbound_nodes", []):
            for entry in node:
                if entry[0] in nested:
                    entry[1] += 1
    return {"name": cfg.get("name"), "trainable": cfg.get("trainable", True), "layers": layers,
            "input_layers": cfg["input_layers"],
            "output_layers": _shift_refs(cfg["output_layers"], nested)}


def _shift_refs(refs: Any, nested: set) -> Any:
    if isinstance(refs, dict):
        return {k: _shift_refs(v, nested) for k, v in refs.items()}
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        return [refs[0], refs[1] + (1 if refs[0] in nested else 0), refs[2]]
    if isinstance(refs, list):
        return [_shift_refs(r, nested) for r in refs]
    return refs


def translate_config(config: dict) -> dict:
    """A whole Keras 3 model config (config.json) -> a tf_keras model config."""
    cls = config.get("class_name")
    if cls not in _MODEL_CLASSES:
        raise BridgeError(f"top-level object is {cls}, not a Sequential/Functional model "
                          "(subclassed models have no config to rebuild from)")
    return {"class_name": "Functional" if cls == "Model" else cls,
            "config": translate_model_config(cls, config["config"])}


# ---------------------------------------------------------------- weights

def _short(name: str) -> str:
    return name.split(":")[0].rsplit("/", 1)[-1]


def _rel_names(names: list[str]) -> list[str]:
    """Variable names relative to their layer ('forward_lstm/lstm_cell/kernel'), falling back
    to the last component when that is unique."""
    parts = [n.split(":")[0].split("/") for n in names]
    rel = ["/".join(p[1:]) or p[-1] for p in parts]
    if len(set(rel)) == len(rel):
        return rel
    return [p[-1] for p in parts]


def _copy_layer_weights(src_layer, dst_layer) -> list[str]:
    """Copy one layer's variables. Match by variable short name when the names agree,
    else by order; shapes must agree. Returns notes."""
    src = [(v.path if hasattr(v, "path") else v.name, np.asarray(v.numpy())) for v in src_layer.weights]
    dst = list(dst_layer.weights)
    label = f"layer '{src_layer.name}' (class {type(src_layer).__name__})"
    if len(src) != len(dst):
        raise BridgeError(f"{label}: Keras 3 has {len(src)} variables "
                          f"{[_short(n) for n, _ in src]}, tf_keras {len(dst)} "
                          f"{[_short(v.name) for v in dst]}")
    notes = []
    src_names = _rel_names([n for n, _ in src])
    dst_names = _rel_names([v.name for v in dst])
    if sorted(src_names) == sorted(dst_names) and len(set(src_names)) == len(src_names):
        by_name = dict(zip(src_names, (a for _, a in src)))
        values = [by_name[n] for n in dst_names]
        if src_names != dst_names:
            notes.append(f"{label}: variable order differs, matched by name")
    else:
        values = [a for _, a in src]
        notes.append(f"{label}: names differ ({src_names} vs {dst_names}); matched by order")
    for v, a, n in zip(dst, values, dst_names):
        if tuple(v.shape) != a.shape:
            raise BridgeError(f"{label}: variable {n} has shape {a.shape} in Keras 3, "
                              f"{tuple(v.shape)} in tf_keras")
    dst_layer.set_weights(values)
    return notes


def _copy_weights(k3_model, tfk_model) -> list[str]:
    notes = []
    dst_layers = {l.name: l for l in tfk_model.layers}
    for layer in k3_model.layers:
        if not layer.weights:
            continue
        dst = dst_layers.get(layer.name)
        if dst is None:
            raise BridgeError(f"layer '{layer.name}' (class {type(layer).__name__}) is missing "
                              "from the rebuilt tf_keras model")
        notes += _copy_layer_weights(layer, dst)
    return notes


# ---------------------------------------------------------------- entry points

def to_tf_keras(model: Any) -> tuple[Any, list[str]]:
    """A Keras 3 model -> an equivalent tf_keras model with the same weights, and notes."""
    from gate.measure.tfenv import keras3

    k3 = keras3()
    if not isinstance(model, k3.Model):
        raise BridgeError(f"not a Keras 3 model: {type(model).__name__}")
    config = k3.saving.serialize_keras_object(model)
    tf_cfg = translate_config(config)
    tfk = _tfk()
    try:
        rebuilt = tfk.layers.deserialize(tf_cfg)
    except BridgeError:
        raise
    except Exception as e:  # noqa: BLE001 - tf_keras's refusal, with the layer it names
        raise BridgeError(f"tf_keras cannot rebuild the translated config: "
                          f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}") from None
    return rebuilt, _copy_weights(model, rebuilt)


@dataclass(frozen=True)
class BridgeCheck:
    max_abs_diff: float
    tolerance: float
    examples: int
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"max_abs_diff": self.max_abs_diff, "tolerance": self.tolerance, "examples": self.examples,
                "rule": f"every output within {BRIDGE_MAX_DIFF:g} x max(1, max |Keras 3 output|)",
                "notes": list(self.notes)}


def compare_outputs(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], examples: int,
                    notes: tuple[str, ...] = ()) -> BridgeCheck:
    """The Keras 3 outputs `a` vs the bridged model's `b` (by name, else in order)."""
    pa, pb = list(a.values()), [b[k] for k in a] if set(a) <= set(b) else list(b.values())
    if len(pa) != len(pb) or any(np.shape(x) != np.shape(y) for x, y in zip(pa, pb)):
        raise BridgeError(f"output structure differs: {[np.shape(x) for x in pa]} vs {[np.shape(y) for y in pb]}")
    diff = max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in zip(pa, pb))
    scale = max(1.0, max(float(np.max(np.abs(x))) for x in pa))
    tolerance = BRIDGE_MAX_DIFF * scale
    if not diff <= tolerance:
        raise BridgeError(f"the rebuilt tf_keras model differs from the Keras 3 model by {diff:.3g} on "
                          f"{examples} eval examples (tolerance {tolerance:.3g})",
                          hint="a layer's weights or options did not carry over; " + WHAT_TO_DO)
    return BridgeCheck(diff, tolerance, examples, notes)
