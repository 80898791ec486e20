"""Layer selection for a step: include/exclude by class, name and regex, with the
reason for every layer a step leaves alone."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from gate.config.steps import LayerSelect

# Why a layer was left alone (the report lists these).
EXCLUDED_CLASS = "excluded by the policy (class)"
EXCLUDED_NAME = "excluded by the policy (name)"
NOT_INCLUDED = "not in the policy's include list"
TOO_FEW = "too few weights"


@dataclass(frozen=True)
class Selection:
    chosen: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]   # (layer name, reason)

    def to_dict(self) -> dict:
        return {"changed": list(self.chosen), "skipped": [{"layer": n, "reason": r} for n, r in self.skipped]}


def kernel_size(layer: Any) -> int:
    for attr in ("kernel", "depthwise_kernel", "embeddings"):
        w = getattr(layer, attr, None)
        if w is not None:
            return int(w.shape.num_elements())
    return 0


def select_layers(layers: list[Any], sel: LayerSelect, unsupported: Callable[[Any], str | None]) -> Selection:
    """`unsupported(layer)` returns why the technique cannot touch a layer, or None.
    Layers without weights are not listed at all: no step could change them."""
    chosen, skipped = [], []
    for layer in layers:
        if not layer.weights:
            continue
        name, cls = layer.name, type(layer).__name__
        reason = _policy_reason(name, cls, sel)
        if reason is None:
            reason = unsupported(layer)
        if reason is None and kernel_size(layer) < sel.min_weights:
            reason = f"{TOO_FEW} ({kernel_size(layer)} < min_weights {sel.min_weights})"
        if reason is None:
            chosen.append(name)
        else:
            skipped.append((name, reason))
    return Selection(tuple(chosen), tuple(skipped))


def choose(layers: list[Any], sel: LayerSelect, unsupported: Callable[[Any], str | None], step: str) -> Selection:
    """select_layers, refusing a step that would touch no layer."""
    from gate.errors import PolicyError

    selection = select_layers(layers, sel, unsupported)
    if not selection.chosen:
        raise PolicyError(f"{step}: no layer selected (check layers.include/exclude)", field=f"steps.{step}.layers")
    return selection


def wrap_chosen(model: Any, chosen: tuple[str, ...], wrap: Callable[[Any], Any]) -> Any:
    """The model re-built with `wrap(layer)` in place of each chosen layer; the other
    layers are the same objects (callers pass their own copy)."""
    from gate.measure.tfenv import keras

    names = set(chosen)
    return keras().models.clone_model(model, clone_function=lambda layer: wrap(layer) if layer.name in names else layer)


def _policy_reason(name: str, cls: str, sel: LayerSelect) -> str | None:
    if cls in sel.exclude:
        return EXCLUDED_CLASS
    if name in sel.exclude_names or (sel.exclude_regex and re.search(sel.exclude_regex, name)):
        return EXCLUDED_NAME
    if sel.include and cls not in sel.include:
        return NOT_INCLUDED
    if sel.include_names and name not in sel.include_names:
        return NOT_INCLUDED
    if sel.include_regex and not re.search(sel.include_regex, name):
        return NOT_INCLUDED
    return None
