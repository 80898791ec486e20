"""Structured pruning: remove whole Dense units / Conv2D filters and rebuild a smaller model.

tfmot's pruning zeroes weights inside tensors of unchanged shape; this removes the
lowest-norm output units of each selected layer outright, so the model genuinely gets
smaller: the layer's kernel loses columns (filters), every channel-preserving layer after
it (BatchNormalization, activations, pooling, Flatten, DepthwiseConv2D, ...) is resized to
match, and the next Dense/Conv2D loses the matching input rows. The result is meant to be
fine-tuned afterwards ("remove low-importance units, then retrain").

Only chains are resized: a shrunk tensor must reach exactly one consumer at a time,
through layers listed in PASS_THROUGH, until a Dense/Conv2D consumes it. Anything else on
that path (Add, Concatenate, Reshape, nested models, shared or unknown layers) is a
PolicyError naming the layer, never a silently wrong model. Layers that are not shrunk
keep their channels, so residual blocks are fine as long as the layers feeding the merge
are excluded.

Ranking is greedy across layers: a layer whose inputs were already shrunk is ranked on the
kernel rows that remain (the removed rows no longer contribute to anything).
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from gate.errors import InternalError, ModelError, PolicyError

NORMS = ("l1", "l2")

# Layers whose output units can be removed -> the config key holding their count.
SHRINKABLE: dict[str, str] = {"Dense": "units", "Conv2D": "filters"}

# Layers a shrunk tensor may flow through -> how kept channel indices map to their output:
#   same:      channel c stays channel c (elementwise, spatial-only or per-channel ops)
#   flatten:   channel c of an (..., C) tensor becomes the flat positions p*C + c
#   depthwise: channel c becomes output channels c*depth_multiplier + m
# BatchNormalization and DepthwiseConv2D carry per-channel weights, which are sliced.
PASS_THROUGH: dict[str, str] = {
    "BatchNormalization": "same",
    "Activation": "same",
    "ReLU": "same",
    "LeakyReLU": "same",
    "ELU": "same",
    "Dropout": "same",
    "SpatialDropout2D": "same",
    "GaussianNoise": "same",
    "GaussianDropout": "same",
    "MaxPooling2D": "same",
    "AveragePooling2D": "same",
    "GlobalAveragePooling2D": "same",
    "GlobalMaxPooling2D": "same",
    "ZeroPadding2D": "same",
    "Cropping2D": "same",
    "UpSampling2D": "same",
    "Flatten": "flatten",
    "DepthwiseConv2D": "depthwise",
}

# Layers that combine tensors elementwise: the channels of all inputs must match.
MERGES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}
# Layers that move values between positions and channels.
RESHAPES = {"Reshape", "Permute", "RepeatVector"}

HOW_TO_AVOID = "exclude '{origin}' (layers.exclude_names) or use prune"


@dataclass(frozen=True)
class LayerShrink:
    """One row per selected prunable layer: units/filters before and after."""

    name: str
    cls: str
    before: int
    after: int
    norm: str


@dataclass(frozen=True)
class StructuredResult:
    model: Any                                  # the new, smaller tf_keras model (not compiled)
    shrunk: tuple[LayerShrink, ...]
    skipped: tuple[tuple[str, str], ...]        # (layer name, reason)
    params_before: int
    params_after: int


# --------------------------------------------------------------------------- graph

TensorKey = tuple[str, int, int]    # (producing layer name, node index, output index)
NodeKey = tuple[str, int]           # (layer name, node index)


@dataclass(frozen=True)
class _Node:
    layer: Any
    cls: str                                        # stock Keras class name, else module.Name
    inputs: tuple[TensorKey, ...]
    input_shapes: tuple[tuple[int | None, ...], ...]  # without the batch axis
    outputs: tuple[TensorKey, ...]

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def label(self) -> str:
        """The class for messages: bare for tf_keras' own classes, module-qualified for custom ones."""
        bare = type(self.layer).__name__
        return bare if self.cls == bare or self.cls.startswith("tf_keras.") else self.cls


@dataclass(frozen=True)
class _Graph:
    nodes: dict[NodeKey, _Node]
    order: tuple[NodeKey, ...]                      # topological
    consumers: dict[TensorKey, list[NodeKey]]
    outputs: frozenset[TensorKey]                   # the model's output tensors
    uses: dict[str, int]                            # layer name -> calls in this model

    def producer(self, t: TensorKey) -> _Node:
        return self.nodes[t[:2]]


def _class_name(k: Any, layer: Any) -> str:
    """The stock Keras class name; subclasses and foreign layers get a qualified name, so
    they never match the tables above."""
    name = type(layer).__name__
    if getattr(k.layers, name, None) is type(layer):
        return name
    return f"{type(layer).__module__}.{name}"


def _tensor_key(t: Any) -> TensorKey:
    h = t._keras_history
    return (h.layer.name, h.node_index, h.tensor_index)


def _shape(t: Any) -> tuple[int | None, ...]:
    return tuple(t.shape.as_list()[1:]) if t.shape.rank is not None else ()


def _graph(k: Any, tf: Any, model: Any) -> _Graph:
    """The model's call graph, found by walking back from its outputs (as Keras does)."""
    nodes: dict[NodeKey, _Node] = {}
    todo = [t._keras_history for t in model.outputs]
    while todo:
        h = todo.pop()
        key = (h.layer.name, h.node_index)
        if key in nodes:
            continue
        node = h.layer._inbound_nodes[h.node_index]
        inbound = [kt for *_, kt in node.iterate_inbound()]
        n_out = len(tf.nest.flatten(node.outputs))
        nodes[key] = _Node(h.layer, _class_name(k, h.layer), tuple(_tensor_key(kt) for kt in inbound),
                           tuple(_shape(kt) for kt in inbound),
                           tuple((key[0], key[1], i) for i in range(n_out)))
        todo.extend(kt._keras_history for kt in inbound)
    rank = {layer.name: i for i, layer in enumerate(model.layers)}
    order = _topological(nodes, rank)
    consumers: dict[TensorKey, list[NodeKey]] = defaultdict(list)
    uses: dict[str, int] = defaultdict(int)
    for key in order:
        uses[key[0]] += 1
        for t in nodes[key].inputs:
            consumers[t].append(key)
    return _Graph(nodes, tuple(order), dict(consumers),
                  frozenset(_tensor_key(t) for t in model.outputs), dict(uses))


def _topological(nodes: dict[NodeKey, _Node], rank: dict[str, int]) -> list[NodeKey]:
    """Kahn's algorithm; among ready nodes, the one whose layer comes first in model.layers."""
    pending = {key: len({t[:2] for t in node.inputs}) for key, node in nodes.items()}
    children: dict[NodeKey, set[NodeKey]] = defaultdict(set)
    for key, node in nodes.items():
        for t in node.inputs:
            children[t[:2]].add(key)

    def prio(key: NodeKey) -> tuple[int, str, int]:
        return (rank.get(key[0], len(rank)), key[0], key[1])

    ready = [(prio(key), key) for key, n in pending.items() if n == 0]
    heapq.heapify(ready)
    order: list[NodeKey] = []
    while ready:
        _, key = heapq.heappop(ready)
        order.append(key)
        for child in children[key]:
            pending[child] -= 1
            if pending[child] == 0:
                heapq.heappush(ready, (prio(child), child))
    return order


# --------------------------------------------------------------------------- selection

def _output_definers(g: _Graph) -> dict[str, str]:
    """Dense/Conv2D layers whose units reach a model output through pass-through layers
    only: their units are the model's outputs (the classes), so they never shrink."""
    found: dict[str, str] = {}
    for out in sorted(g.outputs):
        node = g.producer(out)
        while node.cls in PASS_THROUGH and len(node.inputs) == 1:
            node = g.producer(node.inputs[0])
        if node.cls in SHRINKABLE:
            why = ("output layer: its units are the model's outputs" if node.name == out[0] else
                   f"defines the model output '{out[0]}': its units are the output's channels")
            found.setdefault(node.name, why)
    return found


def _unshrinkable(node: _Node, g: _Graph) -> str | None:
    """Why this Dense/Conv2D cannot lose output units, or None."""
    layer = node.layer
    if g.uses[node.name] > 1:
        return f"shared layer: called {g.uses[node.name]} times in the model"
    if node.cls == "Conv2D" and layer.groups != 1:
        return f"grouped convolution (groups={layer.groups})"
    if node.cls == "Conv2D" and layer.data_format != "channels_last":
        return f"data_format={layer.data_format!r}; only channels_last is supported"
    return None


def _select(g: _Graph, selected: set[str] | None) -> tuple[set[str], list[tuple[str, str]]]:
    """The layers to shrink, and (name, reason) for selected layers that will not shrink.
    Layers outside `selected` are the caller's business and are not listed."""
    definers = _output_definers(g)
    targets: set[str] = set()
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    for key in g.order:
        node = g.nodes[key]
        if node.name in seen:
            continue
        seen.add(node.name)
        if selected is not None and node.name not in selected:
            continue
        if node.cls in SHRINKABLE:
            why = definers.get(node.name) or _unshrinkable(node, g)
            if why:
                skipped.append((node.name, why))
            else:
                targets.add(node.name)
        elif getattr(node.layer, "_is_graph_network", False):
            skipped.append((node.name, "nested model: structured_prune does not prune inside nested models"))
        elif selected is not None and node.cls not in PASS_THROUGH and node.layer.weights:
            skipped.append((node.name, f"{node.label}: structured_prune shrinks Dense and Conv2D layers only"))
    if selected is not None:
        skipped += [(name, "no layer with this name in the model") for name in sorted(selected - seen)]
    return targets, skipped


# --------------------------------------------------------------------------- ranking

def keep_count(n: int, ratio: float, min_units: int) -> int:
    """Units kept out of n: max(min_units, round(n * (1 - ratio))), at most n."""
    return min(n, max(min_units, round(n * (1.0 - ratio))))


def unit_norms(kernel: np.ndarray, norm: str) -> np.ndarray:
    """Norm of each output unit's kernel slice (over all axes but the last)."""
    flat = np.abs(kernel.reshape(-1, kernel.shape[-1]).astype(np.float64))
    return flat.sum(axis=0) if norm == "l1" else np.sqrt((flat * flat).sum(axis=0))


def rank_keep(kernel: np.ndarray, n_keep: int, norm: str) -> np.ndarray:
    """Indices of the n_keep highest-norm output units, in their original order (ties:
    the earlier unit wins)."""
    order = np.argsort(-unit_norms(kernel, norm), kind="stable")
    return np.sort(order[:n_keep])


# --------------------------------------------------------------------------- propagation

@dataclass(frozen=True)
class _Channels:
    """A tensor whose last axis lost entries: `keep` of its original `size` remain."""

    origin: str                  # the shrunk layer this comes from
    keep: np.ndarray
    size: int
    via: tuple[str, ...] = ()    # pass-through layers traversed so far


@dataclass
class _Plan:
    in_keep: dict[str, np.ndarray]    # layer -> kept input channels (last input axis)
    out_keep: dict[str, np.ndarray]   # layer -> kept output channels
    units: dict[str, int]             # shrunk layer -> new units/filters
    rows: list[LayerShrink]


def _refusal(g: _Graph, node: _Node, t: TensorKey, c: _Channels) -> str | None:
    """Why `node` cannot take the shrunk tensor `t`, or None if it can."""
    layer, cls = node.layer, node.cls
    via = f" (through {', '.join(repr(v) for v in c.via)})" if c.via else ""
    feeds = f"its output{via} feeds '{node.name}' ({node.label})"
    users = g.consumers.get(t, [])
    if len(users) > 1:
        names = ", ".join(repr(u[0]) for u in users)
        return (f"its output{via} feeds {len(users)} layers ({names}), which would all need resizing; "
                "only single-consumer chains can shrink")
    if len(node.inputs) > 1:
        if cls in MERGES:
            return f"{feeds}, which needs matching channels"
        if cls == "Concatenate":
            return f"{feeds}, which joins it with other tensors; concatenated channels are not resized"
        return f"{feeds}, which takes several inputs"
    if getattr(layer, "_is_graph_network", False):
        return f"{feeds}, a nested model whose inner layers are not resized"
    if g.uses[node.name] > 1:
        return f"{feeds}, a layer shared by {g.uses[node.name]} calls, which all need the same input size"
    if cls in RESHAPES:
        return f"{feeds}, which reshapes it, so its channel positions are not preserved"
    if cls not in SHRINKABLE and cls not in PASS_THROUGH:
        return (f"{feeds}, which structured_prune cannot resize (it passes channels through "
                f"{', '.join(sorted(PASS_THROUGH))} only)")
    return _layout_refusal(node, feeds)


def _layout_refusal(node: _Node, feeds: str) -> str | None:
    """Supported classes in a layout that the channel mapping does not cover."""
    layer = node.layer
    fmt = getattr(layer, "data_format", None)
    if fmt not in (None, "channels_last"):
        return f"{feeds}, which uses data_format={fmt!r}; only channels_last is supported"
    if node.cls == "Conv2D" and layer.groups != 1:
        return f"{feeds}, a grouped convolution (groups={layer.groups}) whose input channels must stay divisible"
    shape = node.input_shapes[0]
    if node.cls == "BatchNormalization" and list(layer.axis) not in ([len(shape)], [-1]):
        return f"{feeds}, which normalizes axis {list(layer.axis)}, not the last (channel) axis"
    if node.cls == "Flatten" and any(d is None for d in shape):
        return f"{feeds}, whose input shape {shape} is not static"
    return None


def _through(node: _Node, c: _Channels) -> _Channels:
    """The kept channels of a pass-through layer's output."""
    kind = PASS_THROUGH[node.cls]
    via = c.via + (node.name,)
    if kind == "flatten":
        positions = int(np.prod(node.input_shapes[0][:-1], dtype=np.int64))
        flat = (np.arange(positions)[:, None] * c.size + c.keep[None, :]).ravel()
        return _Channels(c.origin, flat, positions * c.size, via)
    if kind == "depthwise":
        mult = int(node.layer.depth_multiplier)
        return _Channels(c.origin, (c.keep[:, None] * mult + np.arange(mult)).ravel(), c.size * mult, via)
    return _Channels(c.origin, c.keep, c.size, via)


def _propagate(g: _Graph, targets: set[str], ratio: float, norm: str, min_units: int) -> _Plan:
    """Walk the graph once in order: rank each target, carry the kept channels downstream."""
    plan = _Plan({}, {}, {}, [])
    reduced: dict[TensorKey, _Channels] = {}
    problems: dict[str, str] = {}
    for key in g.order:
        node = g.nodes[key]
        out: _Channels | None = None
        incoming = [(t, reduced[t]) for t in node.inputs if t in reduced]
        refused = [(c.origin, why) for t, c in incoming if (why := _refusal(g, node, t, c))]
        for origin, why in refused:
            problems.setdefault(origin, why)
        if incoming and not refused:
            c = incoming[0][1]          # a node taking several inputs was refused above
            plan.in_keep[node.name] = c.keep
            if node.cls in PASS_THROUGH:
                out = _through(node, c)
                plan.out_keep[node.name] = out.keep
        if node.name in targets:
            out = _shrink(node, plan, ratio, norm, min_units)
        if out is not None:
            for t in node.outputs:
                reduced[t] = out
    if problems:
        _raise(problems)
    return plan


def _shrink(node: _Node, plan: _Plan, ratio: float, norm: str, min_units: int) -> _Channels | None:
    """Rank one Dense/Conv2D's output units; record the row; the kept channels if fewer."""
    kernel = node.layer.get_weights()[0]
    if node.name in plan.in_keep:
        kernel = np.take(kernel, plan.in_keep[node.name], axis=-2)
    n = int(kernel.shape[-1])
    n_keep = keep_count(n, ratio, min_units)
    plan.rows.append(LayerShrink(node.name, node.cls, n, n_keep, norm))
    if n_keep == n:
        return None
    keep = rank_keep(kernel, n_keep, norm)
    plan.out_keep[node.name] = keep
    plan.units[node.name] = n_keep
    return _Channels(node.name, keep, n)


def _raise(problems: dict[str, str]) -> None:
    origin, why = next(iter(problems.items()))
    message = f"structured_prune cannot shrink '{origin}': {why}; {HOW_TO_AVOID.format(origin=origin)}"
    others = [f"'{o}' ({w.split(',')[0]})" for o, w in list(problems.items())[1:]]
    hint = ("these cannot shrink either: " + "; ".join(others)) if others else None
    raise PolicyError(message, hint=hint)


# --------------------------------------------------------------------------- rebuild

def _slice_weights(cls: str, weights: list[np.ndarray], in_keep: np.ndarray | None,
                   out_keep: np.ndarray | None) -> list[np.ndarray]:
    """A layer's weights with removed input/output channels taken out.

    Dense (in, out) and Conv2D (kh, kw, in, out) kernels: input axis -2, output axis -1,
    bias by output. DepthwiseConv2D (kh, kw, in, mult): input axis 2, bias by output.
    BatchNormalization: every weight is per channel.
    """
    if cls == "BatchNormalization":
        return [np.take(w, in_keep, axis=0) for w in weights]
    kernel, rest = weights[0], weights[1:]
    if in_keep is not None:
        kernel = np.take(kernel, in_keep, axis=-2)
    if cls in SHRINKABLE and out_keep is not None:
        kernel = np.take(kernel, out_keep, axis=-1)
    if out_keep is not None:
        rest = [np.take(w, out_keep, axis=0) for w in rest]
    return [kernel, *rest]


def _rebuild(k: Any, model: Any, units: dict[str, int]) -> Any:
    """A fresh model from the original's layer configs, with the new units/filters."""
    def clone_layer(layer: Any) -> Any:
        config = layer.get_config()
        if layer.name in units:
            config[SHRINKABLE[_class_name(k, layer)]] = units[layer.name]
        return layer.__class__.from_config(config)

    try:
        return k.models.clone_model(model, clone_function=clone_layer)
    except Exception as exc:  # noqa: BLE001 - a layer that cannot be rebuilt from its config
        raise ModelError(f"structured_prune could not rebuild the model from its config: "
                         f"{type(exc).__name__}: {str(exc).strip()[:300]}") from None


def _copy_weights(k: Any, model: Any, new: Any, plan: _Plan) -> None:
    """Every layer's weights into the new model: sliced where channels went, copied otherwise."""
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        name = layer.name
        if name in plan.in_keep or name in plan.out_keep:
            weights = _slice_weights(_class_name(k, layer), weights, plan.in_keep.get(name),
                                     plan.out_keep.get(name))
        try:
            new.get_layer(name).set_weights(weights)
        except ValueError as exc:
            raise InternalError(f"structured_prune: weights of '{name}' do not fit the rebuilt layer: "
                                f"{str(exc).strip()[:300]}") from None


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


def structured_prune(model: Any, *, ratio: float, norm: str = "l1", selected: set[str] | None = None,
                     min_units: int = 1) -> StructuredResult:
    """Remove the lowest-norm units/filters of each selected Dense/Conv2D and rebuild a
    smaller model with the remaining weights copied. The original model is not modified.

    ratio: fraction of units removed from each selected layer; each keeps
      max(min_units, round(n * (1 - ratio))). selected: names of layers the policy allows
      (None: every Dense/Conv2D). Layers defining the model's outputs never shrink.
    """
    from gate.measure.tfenv import keras, tf

    k, tfm = keras(), tf()
    _check_args(ratio, norm, min_units)
    _check_model(k, model)
    g = _graph(k, tfm, model)
    targets, skipped = _select(g, None if selected is None else set(selected))
    plan = _propagate(g, targets, ratio, norm, min_units)
    new = _rebuild(k, model, plan.units)
    _copy_weights(k, model, new, plan)
    return StructuredResult(new, tuple(plan.rows), tuple(skipped), int(model.count_params()),
                            int(new.count_params()))
