"""Channel dependency graph of a functional tf_keras model (the Torch-Pruning idea, for Keras 2).

Every tensor's channel (last) axis gets a *layout*: for each position, the channel group
it belongs to and the channel's index inside that group. A group is a set of channels that
must be removed together; it is born at a producer and grows by unions at couplers:

  producers   Dense units, Conv2D filters, SeparableConv2D pointwise filters: a fresh
              group of `units`/`filters` channels.
  followers   BatchNormalization, LayerNormalization(last axis), DepthwiseConv2D and
              weight-free elementwise/spatial layers (activations, dropout, pooling,
              padding, global pooling, scalar Rescaling): the output layout is the input's
              (DepthwiseConv2D with depth_multiplier m repeats each channel m times).
  couplers    Add/Subtract/Multiply/Average/Maximum/Minimum: the inputs' groups are
              unioned position by position (an input of 1 channel is a broadcast and
              constrains nothing). Concatenate on the channel axis: the output layout is
              the inputs' layouts one after the other, so removing an input channel
              removes the matching output slice.
  reshapes    Flatten (and a Reshape to one flat axis): the layout is tiled once per
              spatial position (channels are the fastest-varying axis in NHWC); a Reshape
              that keeps the last axis keeps the layout; any other Reshape mixes channels.
  consumers   the next Dense/Conv2D/SeparableConv2D/DepthwiseConv2D/BN reads the layout
              of its input and loses the input slices of removed channels.

A group is *frozen* (kept whole) with a reason when it reaches a layer the mapping does not
cover (unsupported class, channel-mixing Reshape, shared layer with weights, grouped conv,
channels_first, ...), holds the model input's channels, or reaches a model output (checked
by the caller from `output_groups`). Unions propagate freezing: a group that is added to a
frozen one is frozen too.
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Layers that define new channels -> the config key holding their count.
PRODUCERS: dict[str, str] = {"Dense": "units", "Conv2D": "filters", "SeparableConv2D": "filters"}
# Layers whose output channels are their input's and which carry per-channel weights.
FOLLOWERS = {"BatchNormalization", "LayerNormalization", "DepthwiseConv2D"}
# Weight-free layers that act per channel (or only on spatial axes): layout unchanged.
ELEMENTWISE = {
    "Activation", "ReLU", "ELU", "LeakyReLU", "Softmax", "ThresholdedReLU",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "ActivityRegularization", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D",
    "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D", "Rescaling",
}
MERGES = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}

TensorKey = tuple[str, int, int]    # (producing layer name, node index, output index)
NodeKey = tuple[str, int]           # (layer name, node index)


# --------------------------------------------------------------------------- call graph

@dataclass(frozen=True)
class Node:
    layer: Any
    cls: str                                         # stock Keras class name, else module.Name
    inputs: tuple[TensorKey, ...]
    input_shapes: tuple[tuple[int | None, ...], ...]  # without the batch axis
    outputs: tuple[TensorKey, ...]
    output_shapes: tuple[tuple[int | None, ...], ...]

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def label(self) -> str:
        """The class for messages: bare for tf_keras' own classes, module-qualified otherwise."""
        bare = type(self.layer).__name__
        return bare if self.cls == bare or self.cls.startswith("tf_keras.") else self.cls


@dataclass(frozen=True)
class Graph:
    nodes: dict[NodeKey, Node]
    order: tuple[NodeKey, ...]                       # topological
    outputs: tuple[TensorKey, ...]                   # the model's output tensors
    uses: dict[str, int]                             # layer name -> calls in this model
    by_name: dict[str, Node]                         # layer name -> its first call

    def producer(self, t: TensorKey) -> Node:
        return self.nodes[t[:2]]


def class_name(k: Any, layer: Any) -> str:
    """The stock Keras class name; subclasses and foreign layers get a qualified name, so they
    never match the tables above."""
    name = type(layer).__name__
    return name if getattr(k.layers, name, None) is type(layer) else f"{type(layer).__module__}.{name}"


def _key(t: Any) -> TensorKey:
    h = t._keras_history
    return (h.layer.name, h.node_index, h.tensor_index)


def _shape(t: Any) -> tuple[int | None, ...]:
    return tuple(t.shape.as_list()[1:]) if t.shape.rank is not None else ()


def call_graph(k: Any, tf: Any, model: Any) -> Graph:
    """The model's call graph, found by walking back from its outputs (as Keras does)."""
    nodes: dict[NodeKey, Node] = {}
    todo = [t._keras_history for t in model.outputs]
    while todo:
        h = todo.pop()
        key = (h.layer.name, h.node_index)
        if key in nodes:
            continue
        node = h.layer._inbound_nodes[h.node_index]
        inbound = [kt for *_, kt in node.iterate_inbound()]
        outs = tf.nest.flatten(node.outputs)
        nodes[key] = Node(h.layer, class_name(k, h.layer), tuple(_key(t) for t in inbound),
                          tuple(_shape(t) for t in inbound),
                          tuple((key[0], key[1], i) for i in range(len(outs))), tuple(_shape(t) for t in outs))
        todo.extend(t._keras_history for t in inbound)
    rank = {layer.name: i for i, layer in enumerate(model.layers)}
    order = _topological(nodes, rank)
    uses: dict[str, int] = defaultdict(int)
    by_name: dict[str, Node] = {}
    for key in order:
        uses[key[0]] += 1
        by_name.setdefault(key[0], nodes[key])
    return Graph(nodes, tuple(order), tuple(_key(t) for t in model.outputs), dict(uses), by_name)


def _topological(nodes: dict[NodeKey, Node], rank: dict[str, int]) -> list[NodeKey]:
    """Kahn's algorithm; among ready nodes, the one whose layer comes first in model.layers."""
    pending = {key: len({t[:2] for t in node.inputs}) for key, node in nodes.items()}
    children: dict[NodeKey, set[NodeKey]] = defaultdict(set)
    for key, node in nodes.items():
        for t in node.inputs:
            children[t[:2]].add(key)
    ready = [((rank.get(key[0], len(rank)), key), key) for key, n in pending.items() if n == 0]
    heapq.heapify(ready)
    order: list[NodeKey] = []
    while ready:
        _, key = heapq.heappop(ready)
        order.append(key)
        for child in children[key]:
            pending[child] -= 1
            if pending[child] == 0:
                heapq.heappush(ready, ((rank.get(child[0], len(rank)), child), child))
    return order


# --------------------------------------------------------------------------- groups

@dataclass(frozen=True)
class Layout:
    """Per position of a tensor's last axis: its group and its index inside the group."""

    gid: np.ndarray
    idx: np.ndarray

    def __len__(self) -> int:
        return len(self.gid)

    def tile(self, n: int) -> Layout:
        return Layout(np.tile(self.gid, n), np.tile(self.idx, n))

    def repeat(self, n: int) -> Layout:
        return Layout(np.repeat(self.gid, n), np.repeat(self.idx, n))


@dataclass
class Groups:
    """Union-find over channel groups; a root holds the group's size and freeze reasons."""

    parent: list[int] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    reasons: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))

    def new(self, size: int, reason: str | None = None) -> Layout:
        gid = len(self.parent)
        self.parent.append(gid)
        self.size.append(size)
        if reason:
            self.reasons[gid].append(reason)
        return Layout(np.full(size, gid), np.arange(size))

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            a, b = min(a, b), max(a, b)         # the older group is the root
            self.parent[b] = a
            self.reasons[a].extend(self.reasons.pop(b, []))

    def freeze(self, layout: Layout, reason: str) -> None:
        for g in {self.find(int(g)) for g in np.unique(layout.gid)}:
            if reason not in self.reasons[g]:
                self.reasons[g].append(reason)

    def roots(self, layout: Layout) -> set[int]:
        return {self.find(int(g)) for g in np.unique(layout.gid)}


@dataclass
class DepGraph:
    graph: Graph
    groups: Groups
    layouts: dict[TensorKey, Layout]
    producers: dict[str, int]            # producer layer name -> its group id (find() it)
    kinds: dict[str, str]                # layer name -> how it was handled (see _visit)

    def group_of(self, producer: str) -> int:
        return self.groups.find(self.producers[producer])

    def output_groups(self) -> dict[int, str]:
        """Group root -> name of a model output its channels reach."""
        found: dict[int, str] = {}
        for t in self.graph.outputs:
            for g in self.groups.roots(self.layouts[t]):
                found.setdefault(g, t[0])
        return found


# --------------------------------------------------------------------------- analysis

def _problem(node: Node, uses: int) -> str | None:
    """Why a layer of a supported class cannot be resized as a whole, or None."""
    layer, cls = node.layer, node.cls
    fmt = getattr(layer, "data_format", None)
    if fmt not in (None, "channels_last"):
        return f"data_format={fmt!r}; only channels_last is supported"
    if uses > 1 and (layer.weights or cls == "Reshape"):
        return f"shared layer: called {uses} times in the model"
    if cls == "Conv2D" and layer.groups != 1:
        return f"grouped convolution (groups={layer.groups})"
    rank = len(node.input_shapes[0]) if node.input_shapes else 0
    if cls in ("BatchNormalization", "LayerNormalization"):
        axis = list(layer.axis) if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        if axis not in ([-1], [rank]):
            return f"normalizes axis {axis}, not the channel axis"
    if cls == "Rescaling" and (np.ndim(layer.scale) or np.ndim(layer.offset)):
        return "per-channel Rescaling"
    if cls == "Dropout" and layer.noise_shape is not None and layer.noise_shape[-1] not in (None, 1):
        return "noise_shape names the channel count"
    if cls in ("Flatten", "Reshape") and any(d is None for d in node.input_shapes[0] + node.output_shapes[0]):
        return "its input/output shape is not static"
    return None


def _reshape_kind(node: Node) -> str:
    """'same' if the last axis is kept, 'flat' if everything goes to one axis, else 'mix'."""
    src, dst = node.input_shapes[0], node.output_shapes[0]
    if src and dst and src[-1] == dst[-1]:
        return "same"
    if len(dst) == 1 and dst[0] == int(np.prod(src)):
        return "flat"
    return "mix"


def _freeze_node(gr: Groups, node: Node, ins: list[Layout], consumer_why: str, producer_why: str) -> list[Layout]:
    for lay in ins:
        gr.freeze(lay, consumer_why)
    return [gr.new(int(s[-1]) if s and s[-1] else 0, producer_why) for s in node.output_shapes]


def _couple(gr: Groups, node: Node, ins: list[Layout]) -> Layout | None:
    """Union the groups of merged inputs position by position; None if their layouts differ."""
    width = max(len(x) for x in ins)
    real = [x for x in ins if len(x) == width]      # 1-channel inputs broadcast
    if any(len(x) not in (1, width) for x in ins):
        return None
    base = real[0]
    for other in real[1:]:
        if not np.array_equal(base.idx, other.idx):
            return None
        pairs = set(zip(base.gid.tolist(), other.gid.tolist()))
        if any(gr.size[gr.find(a)] != gr.size[gr.find(b)] for a, b in pairs):
            return None
        for a, b in pairs:
            gr.union(a, b)
    return base


def _visit(node: Node, g: Graph, gr: Groups, ins: list[Layout]) -> tuple[str, list[Layout]]:
    """How one call is handled, and its output layouts."""
    cls, name = node.cls, node.name
    if cls == "InputLayer":
        return "input", [gr.new(int(s[-1]) if s and s[-1] else 0, "group holds the model input's channels")
                         for s in node.output_shapes]
    known = cls in PRODUCERS or cls in FOLLOWERS or cls in ELEMENTWISE or cls in MERGES or cls in (
        "Concatenate", "Flatten", "Reshape")
    if not known:
        what = "nested model" if getattr(node.layer, "_is_graph_network", False) else "layer class"
        return "unsupported", _freeze_node(
            gr, node, ins, f"unsupported {what} {node.label} ('{name}') consumes this group",
            f"produced by unsupported {what} {node.label} ('{name}'), which structured_prune does not resize")
    why = _problem(node, g.uses[name])
    if why:
        return "unsupported", _freeze_node(gr, node, ins, f"group feeds '{name}' ({node.label}): {why}", why)
    if cls in PRODUCERS:
        return "producer", [gr.new(int(node.output_shapes[0][-1]))]
    if cls == "DepthwiseConv2D":
        return "follower", [ins[0].repeat(int(node.layer.depth_multiplier))]
    if cls in FOLLOWERS or cls in ELEMENTWISE:
        return ("follower" if cls in FOLLOWERS else "same"), [ins[0]]
    if cls == "Flatten":
        return "flat", [ins[0].tile(int(np.prod(node.input_shapes[0][:-1])))]
    if cls == "Reshape":
        kind = _reshape_kind(node)
        if kind == "mix":
            return "unsupported", _freeze_node(gr, node, ins, f"group feeds a Reshape that mixes channels ('{name}')",
                                               f"produced by '{name}', a Reshape that mixes channels")
        return f"reshape-{kind}", [ins[0] if kind == "same" else ins[0].tile(int(np.prod(node.input_shapes[0][:-1])))]
    rank = len(node.output_shapes[0])
    if cls == "Concatenate" and node.layer.axis in (-1, rank):
        return "concat", [Layout(np.concatenate([x.gid for x in ins]), np.concatenate([x.idx for x in ins]))]
    out = _couple(gr, node, ins)                    # merges, and Concatenate on another axis
    if out is None:
        return "unsupported", _freeze_node(gr, node, ins, f"'{name}' ({node.label}) joins channels of different "
                                           "layouts", f"produced by '{name}', which joins different layouts")
    return "merge", [out]


def analyze(k: Any, tf: Any, model: Any) -> DepGraph:
    """The channel groups of every tensor in the model, in one topological pass."""
    g = call_graph(k, tf, model)
    gr = Groups()
    layouts: dict[TensorKey, Layout] = {}
    producers: dict[str, int] = {}
    kinds: dict[str, str] = {}
    for key in g.order:
        node = g.nodes[key]
        kind, outs = _visit(node, g, gr, [layouts[t] for t in node.inputs])
        kinds.setdefault(node.name, kind)
        if kind == "producer" or (node.cls in PRODUCERS and kind == "unsupported"):
            producers.setdefault(node.name, int(outs[0].gid[0]))
        for t, lay in zip(node.outputs, outs):
            layouts[t] = lay
    return DepGraph(g, gr, layouts, producers, kinds)
