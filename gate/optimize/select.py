"""Layer selection for a step: include/exclude by class, name, regex and graph role
(gate.optimize.roles), with the reason for every layer a step leaves alone."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from gate.config.steps import LayerSelect

# Why a layer was left alone (the report lists these).
EXCLUDED_CLASS = "excluded by the policy (class)"
EXCLUDED_NAME = "excluded by the policy (name)"
EXCLUDED_ROLE = "excluded by the policy (role: {role})"
ROLE_MEANING = {"output": "the model's output layer", "input": "the model's first layer", "embedding": "an embedding"}
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


def select_layers(layers: list[Any], sel: LayerSelect, unsupported: Callable[[Any], str | None],
                  roles: dict[str, set[str]] | None = None) -> Selection:
    """`unsupported(layer)` returns why the technique cannot touch a layer, or None;
    `roles` are the model's graph roles (gate.optimize.roles.layer_roles), needed when the
    selection names roles. Layers without weights are not listed at all: no step could
    change them."""
    chosen, skipped = [], []
    roles = roles or {}
    for layer in layers:
        if not layer.weights:
            continue
        name, cls = layer.name, type(layer).__name__
        reason = _policy_reason(name, cls, sel, roles.get(name, set()))
        if reason is None:
            reason = unsupported(layer)
        if reason is None and kernel_size(layer) < sel.min_weights:
            reason = f"{TOO_FEW} ({kernel_size(layer)} < min_weights {sel.min_weights})"
        if reason is None:
            chosen.append(name)
        else:
            skipped.append((name, reason))
    return Selection(tuple(chosen), tuple(skipped))


def choose(layers: list[Any], sel: LayerSelect, unsupported: Callable[[Any], str | None], step: str,
           roles: dict[str, set[str]] | None = None) -> Selection:
    """select_layers, refusing a step that would touch no layer."""
    from gate.errors import PolicyError

    selection = select_layers(layers, sel, unsupported, roles)
    if not selection.chosen:
        raise PolicyError(f"{step}: no layer selected (check layers.include/exclude)", field=f"steps.{step}.layers")
    return selection


def wrap_chosen(model: Any, chosen: tuple[str, ...], wrap: Callable[[Any], Any]) -> Any:
    """The model re-built with `wrap(layer)` in place of each chosen layer; the other
    layers are the same objects (callers pass their own copy)."""
    from gate.measure.tfenv import keras

    names = set(chosen)
    return keras().models.clone_model(model, clone_function=lambda layer: wrap(layer) if layer.name in names else layer)


def role_reason(role: str) -> str:
    return EXCLUDED_ROLE.format(role=f"{role}, {ROLE_MEANING[role]}")


def model_roles(model: Any, *selections: LayerSelect | None) -> dict[str, set[str]]:
    """The graph roles, computed only when a selection names roles."""
    if not any(s is not None and (s.include_roles or s.exclude_roles) for s in selections):
        return {}
    from gate.optimize.roles import layer_roles

    return layer_roles(model)


def _policy_reason(name: str, cls: str, sel: LayerSelect, roles: set[str] = frozenset()) -> str | None:
    if cls in sel.exclude:
        return EXCLUDED_CLASS
    if name in sel.exclude_names or (sel.exclude_regex and re.search(sel.exclude_regex, name)):
        return EXCLUDED_NAME
    for role in sel.exclude_roles:
        if role in roles:
            return role_reason(role)
    if sel.include_roles and not roles & set(sel.include_roles):
        return NOT_INCLUDED
    if sel.include and cls not in sel.include:
        return NOT_INCLUDED
    if sel.include_names and name not in sel.include_names:
        return NOT_INCLUDED
    if sel.include_regex and not re.search(sel.include_regex, name):
        return NOT_INCLUDED
    return None


def check_per_layer(per_layer: dict, layers: list[Any], selection: Selection, step: str) -> None:
    """Every name of a step's `per_layer` table must be a layer the step changes: a name
    that does not exist (a typo, a renamed layer) or that the selection leaves alone would
    otherwise be ignored silently."""
    from gate.errors import PolicyError

    names = {layer.name for layer in layers}
    skipped = dict(selection.skipped)
    for name in per_layer:
        if name in selection.chosen:
            continue
        if name not in names:
            close = sorted(n for n in names if name.lower() in n.lower() or n.lower() in name.lower())[:4]
            raise PolicyError(f"{step}: per_layer names {name!r}, which is not a layer of this model",
                              field=f"steps.{step}.per_layer.{name}",
                              hint=("similar names: " + ", ".join(close)) if close else
                              "`gate check` lists the model's layers in the report's plan")
        why = skipped.get(name, "it has no weights")
        raise PolicyError(f"{step}: per_layer names {name!r}, which this step leaves alone ({why})",
                          field=f"steps.{step}.per_layer.{name}",
                          hint="remove it from per_layer, or change the step's layers selection")
