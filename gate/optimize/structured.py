"""Structured (channel) pruning of tf_keras functional models that respects channel dependencies.

tfmot's pruning zeroes weights inside tensors of unchanged shape; this removes whole output
channels (Dense units, Conv2D / SeparableConv2D filters) and rebuilds a genuinely smaller
model, to be fine-tuned afterwards. Residual adds, concatenations, depthwise convolutions,
squeeze-excite multiplies and Flatten->Dense heads are handled through a channel
dependency graph (gate.optimize.depgraph), as Torch-Pruning does for PyTorch:

1. Nested models are inlined into one functional graph (their layers are reused).
2. depgraph.analyze gives every tensor's channel layout and the channel *groups*: sets of
   channels that must go together (a residual stream is one group with all the convs that
   write to it; a concatenation's output is the concatenation of its inputs' groups).
3. A group is pruned only if nothing freezes it: it must not reach a model output (a layer
   whose channels reach an output through weight-free layers defines the output), hold the
   model input's channels, touch a layer the mapping does not cover, or contain a producer
   outside `selected`. Everything kept whole is reported in `skipped` with the reason.
4. Groups are ranked in topological order of their first producer. A channel's score is
   the sum over the group's producers of its filter's L1/L2 norm divided by that
   producer's mean filter norm (so a wide or large-valued conv does not dominate); the
   filters are measured on the input rows that survive the groups already decided (greedy,
   as the chain-only version did). The lowest-scoring `ratio` of the channels go; at least
   `min_units` stay.
5. The model is cloned with new `units`/`filters` (and Reshape target shapes), and every
   layer touching a pruned group gets sliced weights: producer kernel columns and biases,
   BN gamma/beta/moving stats, LayerNorm gamma/beta, depthwise kernels and biases, and the
   input rows of every consumer (Dense/Conv/Depthwise/Separable, through Flatten offsets).
6. The rebuilt model is checked: same output shapes, finite outputs on random inputs, fewer
   parameters if anything was removed.

The original model's weights are not modified.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gate.errors import InternalError, ModelError, PolicyError
from gate.optimize.depgraph import FOLLOWERS, PRODUCERS, DepGraph, Layout, analyze

NORMS = ("l1", "l2")


@dataclass(frozen=True)
class LayerShrink:
    """One row per producer in a prunable group: units/filters before and after."""

    name: str
    cls: str
    before: int
    after: int
    norm: str


@dataclass(frozen=True)
class GroupReport:
    """One channel group: the producers writing it, its width before/after, why it stayed."""

    members: tuple[str, ...]
    size: int
    after: int
    reason: str | None


@dataclass(frozen=True)
class StructuredResult:
    model: Any                                  # the new, smaller tf_keras model (not compiled)
    shrunk: tuple[LayerShrink, ...]
    skipped: tuple[tuple[str, str], ...]        # (layer name, reason)
    params_before: int
    params_after: int
    groups: tuple[GroupReport, ...] = ()
    # layer -> (kept input channels, kept output channels), None where all stay
    slices: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = field(default_factory=dict)


def _keras() -> tuple[Any, Any]:
    from gate.measure.tfenv import keras, tf

    return keras(), tf()


# --------------------------------------------------------------------------- ranking

def keep_count(n: int, ratio: float, min_units: int) -> int:
    """Channels kept out of n: max(min_units, round(n * (1 - ratio))), at most n."""
    return min(n, max(min_units, round(n * (1.0 - ratio))))


def unit_norms(kernel: np.ndarray, norm: str) -> np.ndarray:
    """Norm of each output unit's kernel slice (over all axes but the last)."""
    flat = np.abs(kernel.reshape(-1, kernel.shape[-1]).astype(np.float64))
    return flat.sum(axis=0) if norm == "l1" else np.sqrt((flat * flat).sum(axis=0))


def rank_keep(scores: np.ndarray, n_keep: int) -> np.ndarray:
    """Indices of the n_keep highest scores, in their original order (ties: the earlier wins)."""
    return np.sort(np.argsort(-scores, kind="stable")[:n_keep])


def _positions(dg: DepGraph, lay: Layout, masks: dict[int, np.ndarray]) -> np.ndarray | None:
    """Kept positions of a tensor's channel axis, or None if all stay."""
    keep = np.ones(len(lay), bool)
    for g in np.unique(lay.gid):
        root = dg.groups.find(int(g))
        if root in masks:
            at = lay.gid == g
            keep[at] = masks[root][lay.idx[at]]
    return None if keep.all() else np.flatnonzero(keep)


def _expand(pos: np.ndarray | None, mult: int) -> np.ndarray | None:
    """Depthwise output positions of kept input channels: c * mult + m."""
    return None if pos is None else (pos[:, None] * mult + np.arange(mult)).ravel()


def _take(w: np.ndarray, pos: np.ndarray | None, axis: int) -> np.ndarray:
    return w if pos is None else np.take(w, pos, axis=axis)


def _filters(dg: DepGraph, name: str, masks: dict[int, np.ndarray]) -> np.ndarray:
    """A producer's output filters, on the input rows that survive the groups decided so far."""
    node = dg.graph.by_name[name]
    weights = node.layer.get_weights()
    rows = _positions(dg, dg.layouts[node.inputs[0]], masks)
    if node.cls == "SeparableConv2D":
        return _take(weights[1], _expand(rows, int(node.layer.depth_multiplier)), -2)
    return _take(weights[0], rows, -2)


# --------------------------------------------------------------------------- planning

def _producer_reason(dg: DepGraph, name: str, root: int, outputs: dict[int, str],
                     selected: set[str] | None, members: list[str]) -> str | None:
    if root in outputs:
        if any(t[0] == name for t in dg.graph.outputs):
            return "output layer: its units are the model's outputs"
        return f"defines the model output '{outputs[root]}': its units are the output's channels"
    if dg.groups.reasons.get(root):
        return dg.groups.reasons[root][0]
    if selected is not None and (others := [m for m in members if m not in selected]):
        return f"shares channels with {', '.join(repr(m) for m in others)}, not selected"
    return None


def _plan(dg: DepGraph, selected: set[str] | None, ratio: float, norm: str, min_units: int,
          ratios: dict[str, float] | None = None):
    """Decide the kept channels of each prunable group: (masks, rows, skipped, reports).
    `ratios`: per-layer ratios (a policy's per_layer); a group takes its members' lowest."""
    ratios = ratios or {}
    members: dict[int, list[str]] = defaultdict(list)
    for name in dg.producers:                       # insertion order is topological
        members[dg.group_of(name)].append(name)
    outputs = dg.output_groups()
    masks: dict[int, np.ndarray] = {}
    after: dict[int, int] = {}
    skipped: list[tuple[str, str]] = []
    reports: list[GroupReport] = []
    for root, names in members.items():
        size = dg.groups.size[root]
        reasons = {n: _producer_reason(dg, n, root, outputs, selected, names) for n in names}
        if any(reasons.values()):
            skipped += [(n, r) for n, r in reasons.items() if r and (selected is None or n in selected)]
            if selected is None or any(n in selected for n in names):
                reports.append(GroupReport(tuple(names), size, size, next(r for r in reasons.values() if r)))
            continue
        if selected is not None and not any(n in selected for n in names):
            continue
        n_keep = keep_count(size, min(ratios.get(n, ratio) for n in names), min_units)
        after[root] = n_keep
        reports.append(GroupReport(tuple(names), size, n_keep, None))
        if n_keep == size:
            continue
        score = np.zeros(size)
        for n in names:
            norms = unit_norms(_filters(dg, n, masks), norm)
            score += norms / norms.mean() if norms.mean() > 0 else norms
        mask = np.zeros(size, bool)
        mask[rank_keep(score, n_keep)] = True
        masks[root] = mask
    rows = [LayerShrink(n, dg.graph.by_name[n].cls, dg.groups.size[dg.group_of(n)], after[dg.group_of(n)], norm)
            for n in dg.producers if dg.group_of(n) in after]
    return masks, rows, skipped, reports


def _slices(dg: DepGraph, masks: dict[int, np.ndarray]) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    """Per layer touched by a pruned group: kept input and output positions."""
    out: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = {}
    for key in dg.graph.order:
        node = dg.graph.nodes[key]
        if node.name in out or len(node.inputs) != 1 or len(node.outputs) != 1:
            continue
        pin = _positions(dg, dg.layouts[node.inputs[0]], masks)
        pout = _positions(dg, dg.layouts[node.outputs[0]], masks)
        if pin is not None or pout is not None:
            out[node.name] = (pin, pout)
    return out


# --------------------------------------------------------------------------- rebuild

def _slice_weights(node: Any, weights: list[np.ndarray], pin: np.ndarray | None,
                   pout: np.ndarray | None) -> list[np.ndarray]:
    """A layer's weights with removed input/output channels taken out.

    Dense (in, out) / Conv2D (kh, kw, in, out): input axis -2, output axis -1, bias by output.
    DepthwiseConv2D (kh, kw, in, mult): input axis 2, bias by output. SeparableConv2D:
    depthwise as above, pointwise (1, 1, in*mult, out). BN and LayerNorm: all per channel.
    """
    cls = node.cls
    if cls in ("BatchNormalization", "LayerNormalization"):
        return [_take(w, pin, 0) for w in weights]
    if cls == "DepthwiseConv2D":
        return [_take(weights[0], pin, 2), *[_take(w, pout, 0) for w in weights[1:]]]
    if cls == "SeparableConv2D":
        pw = _take(_take(weights[1], _expand(pin, int(node.layer.depth_multiplier)), 2), pout, 3)
        return [_take(weights[0], pin, 2), pw, *[_take(w, pout, 0) for w in weights[2:]]]
    if cls in PRODUCERS:
        return [_take(_take(weights[0], pin, -2), pout, -1), *[_take(w, pout, 0) for w in weights[1:]]]
    raise InternalError(f"structured_prune: no slicing rule for '{node.name}' ({cls}), which a pruned group reaches")


def _overrides(dg: DepGraph, slices: dict) -> dict[str, dict[str, Any]]:
    """Config changes: new units/filters, new Reshape target shapes."""
    out: dict[str, dict[str, Any]] = {}
    for name, (_, pout) in slices.items():
        if pout is None:
            continue
        kind = dg.kinds[name]
        if kind == "producer":
            out[name] = {PRODUCERS[dg.graph.by_name[name].cls]: len(pout)}
        elif kind.startswith("reshape"):
            layer = dg.graph.by_name[name].layer
            target = list(layer.target_shape)
            if target[-1] != -1:
                target[-1] = len(pout)
            out[name] = {"target_shape": tuple(target)}
    return out


def _rebuild(k: Any, model: Any, dg: DepGraph, slices: dict) -> Any:
    overrides = _overrides(dg, slices)

    def clone_layer(layer: Any) -> Any:
        config = layer.get_config()
        config.update(overrides.get(layer.name, {}))
        return layer.__class__.from_config(config)

    try:
        new = k.models.clone_model(model, clone_function=clone_layer)
    except Exception as exc:  # noqa: BLE001 - a layer that cannot be rebuilt from its config
        raise ModelError(f"structured_prune could not rebuild the model from its config: "
                         f"{type(exc).__name__}: {str(exc).strip()[:300]}") from None
    nodes = dg.graph.by_name
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name in slices:
            weights = _slice_weights(nodes[layer.name], weights, *slices[layer.name])
        try:
            new.get_layer(layer.name).set_weights(weights)
        except ValueError as exc:
            raise InternalError(f"structured_prune: weights of '{layer.name}' do not fit the rebuilt layer: "
                                f"{str(exc).strip()[:300]}") from None
    return new


def _verify(tf: Any, model: Any, new: Any, shrunk: bool) -> None:
    """Same output shapes, finite outputs on random inputs, fewer parameters if shrunk."""
    if [tuple(t.shape) for t in new.outputs] != [tuple(t.shape) for t in model.outputs]:
        raise InternalError(f"structured_prune: output shapes changed: {model.output_shape} -> {new.output_shape}")
    if all(t.dtype.is_floating for t in model.inputs):
        rng = np.random.default_rng(0)
        xs = [rng.normal(size=(2, *[d or 32 for d in t.shape[1:]])).astype(t.dtype.as_numpy_dtype)
              for t in model.inputs]
        finite = [all(np.isfinite(y).all() for y in tf.nest.flatten(m(xs if len(xs) > 1 else xs[0], training=False)))
                  for m in (model, new)]
        if finite[0] and not finite[1]:
            raise InternalError("structured_prune: the rebuilt model gives non-finite outputs")
    if shrunk and not new.count_params() < model.count_params():
        raise InternalError("structured_prune: channels were removed but the parameter count did not fall")


# --------------------------------------------------------------------------- nested models

def _retrace(k: Any, tf: Any, model: Any, inputs: list) -> list:
    """Re-run a functional model's graph on new tensors, inlining nested models."""
    tensors: dict[str, list] = {}
    usage = model._tensor_usage_count
    for x, y in zip(model.inputs, inputs):
        tensors[str(id(x))] = [y] * usage[str(id(x))]
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.is_input or any(i not in tensors for i in node.flat_input_ids):
                continue
            args, kwargs = node.map_arguments(tensors)
            if isinstance(node.layer, k.Model):
                if kwargs.get("training") is not None or kwargs.get("mask") is not None:
                    raise ValueError(f"'{node.layer.name}' is called with training=/mask= arguments")
                outs = _retrace(k, tf, node.layer, tf.nest.flatten(args))
                outs = outs[0] if len(outs) == 1 else outs
            else:
                outs = node.layer(*args, **kwargs)
            for x_id, y in zip(node.flat_output_ids, tf.nest.flatten(outs)):
                tensors[x_id] = [y] * usage[x_id]
    return [tensors[str(id(x))].pop() for x in model.outputs]


def _inline(k: Any, tf: Any, model: Any) -> tuple[Any, str | None]:
    """The model with nested models inlined (or itself), and why inlining failed, if it did."""
    if not any(isinstance(layer, k.Model) for layer in model.layers):
        return model, None
    try:
        inputs = [k.Input(shape=x.shape[1:], dtype=x.dtype, name=x.name.split(":")[0]) for x in model.inputs]
        outs = _retrace(k, tf, model, inputs)
        flat = k.Model(inputs, outs[0] if len(outs) == 1 else outs, name=model.name)
    except Exception as exc:  # noqa: BLE001 - then the nested models stay opaque (and frozen)
        return model, f"{type(exc).__name__}: {exc}"
    return flat, None


# --------------------------------------------------------------------------- entry point

def _check_args(ratio: float, norm: str, min_units: int) -> None:
    if not 0.0 <= ratio < 1.0:
        raise PolicyError(f"structured_prune: ratio must be in [0, 1); received {ratio}")
    if norm not in NORMS:
        raise PolicyError(f"structured_prune: norm must be one of {', '.join(NORMS)}; received {norm!r}")
    if not isinstance(min_units, int) or min_units < 1:
        raise PolicyError(f"structured_prune: min_units must be an integer >= 1; received {min_units!r}")


def _check_model(k: Any, model: Any) -> None:
    if not isinstance(model, k.Model):
        raise PolicyError(f"structured_prune needs a tf_keras model; received {type(model).__name__}")
    if isinstance(model, k.Sequential) and not model.built:
        raise PolicyError("structured_prune needs a built model: give the Sequential model an Input")
    if not getattr(model, "_is_graph_network", False) or not model.outputs:
        raise PolicyError("structured_prune needs a Sequential or functional model; "
                          f"'{model.name}' ({type(model).__name__}) is subclassed")


def _other_skips(dg: DepGraph, model: Any, selected: set[str], inline_error: str | None) -> list[tuple[str, str]]:
    """Selected names that are not producers: layers with weights no group covers, missing names."""
    found = dg.graph.by_name
    out = []
    for name in sorted(selected - set(dg.producers)):
        node = found.get(name)
        if node is None:
            nested = name in {layer.name for layer in model.layers}
            out.append((name, "nested model, inlined: select its layers by name" if nested and not inline_error
                        else "no layer with this name in the model"))
        elif node.layer.weights and node.cls not in FOLLOWERS:
            why = (f"nested model that could not be inlined ({inline_error})" if dg.kinds[name] == "unsupported"
                   and getattr(node.layer, "_is_graph_network", False) else
                   f"{node.label}: structured_prune shrinks {', '.join(PRODUCERS)} layers only")
            out.append((name, why))
    return out


def structured_prune(model: Any, *, ratio: float, norm: str = "l1", selected: set[str] | None = None,
                     min_units: int = 1, ratios: dict[str, float] | None = None) -> StructuredResult:
    """Remove the lowest-scoring channels of every prunable channel group and rebuild a smaller
    model with the remaining weights. The original model's weights are not modified.

    ratio: fraction of each group's channels removed; each keeps
      max(min_units, round(n * (1 - ratio))). selected: producer layers the policy allows
      (None: all); a group shrinks only if all its producers are selected. ratios: per-layer
      ratios overriding `ratio` (a group of coupled layers takes its members' lowest).
    """
    k, tf, work, dg, (masks, rows, skipped, reports) = _analyze(model, ratio, norm, selected, min_units, ratios)
    slices = _slices(dg, masks)
    new = _rebuild(k, work, dg, slices)
    _verify(tf, model, new, bool(masks))
    return StructuredResult(new, tuple(rows), tuple(skipped), int(model.count_params()), int(new.count_params()),
                            tuple(reports), slices)


@dataclass(frozen=True)
class StructuredPlan:
    """What structured_prune would do, without rebuilding the model (gate.optimize.preflight)."""

    shrunk: tuple[LayerShrink, ...]
    skipped: tuple[tuple[str, str], ...]
    groups: tuple[GroupReport, ...]


def structured_plan(model: Any, *, ratio: float, norm: str = "l1", selected: set[str] | None = None,
                    min_units: int = 1, ratios: dict[str, float] | None = None) -> StructuredPlan:
    """The channel groups that would shrink and the layers kept whole, with reasons."""
    _k, _tf, _work, _dg, (_masks, rows, skipped, reports) = _analyze(model, ratio, norm, selected, min_units,
                                                                     ratios)
    return StructuredPlan(tuple(rows), tuple(skipped), tuple(reports))


def _analyze(model: Any, ratio: float, norm: str, selected: set[str] | None, min_units: int,
             ratios: dict[str, float] | None = None):
    """Checks, the inlined working copy, its dependency graph and the plan on it:
    (k, tf, work, graph, (masks, rows, skipped, reports))."""
    k, tf = _keras()
    _check_args(ratio, norm, min_units)
    _check_model(k, model)
    work, inline_error = _inline(k, tf, model)
    dg = analyze(k, tf, work)
    chosen = None if selected is None else set(selected)
    masks, rows, skipped, reports = _plan(dg, chosen, ratio, norm, min_units, ratios)
    if chosen is not None:
        skipped += _other_skips(dg, model, chosen, inline_error)
    return k, tf, work, dg, (masks, rows, skipped, reports)
