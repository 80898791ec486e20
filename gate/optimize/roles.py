"""Graph roles of layers: what a layer *is* in the model, not what it is called.

    output     layers with a kernel whose outputs reach a model output through layers
               without one (Reshape, Flatten, Activation, Softmax, Dropout, pooling,
               BatchNormalization, ...): `predictions` of keras.applications, MobileNet's
               `conv_preds` behind Reshape + Activation, MobileNetV3's `Logits` behind
               Flatten, a head Dense inside a nested model. Every output of a multi-output
               model has its own.
    input      the first layer(s) with a kernel the model inputs reach through layers
               without one (Rescaling, Normalization, ZeroPadding2D, ...): the stem.
    embedding  Embedding layers.

Walks tf_keras' node history (KerasTensor._keras_history), per call, so a layer called
twice is handled per call, and enters nested models (their layers are named
"outer/inner"; after gate.optimize.flatten they have their own names).
"""
from __future__ import annotations

from typing import Any

ROLES = ("output", "input", "embedding")
KERNEL_ATTRS = ("kernel", "depthwise_kernel", "pointwise_kernel", "embeddings")
_KERNEL_CLASSES = ("MultiHeadAttention", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "EinsumDense", "ConvLSTM2D")


def _k() -> Any:
    from gate.measure.tfenv import keras

    return keras()


def unwrap(layer: Any) -> Any:
    """The layer inside tfmot's wrappers (PruneLowMagnitude, ClusterWeights, QuantizeWrapper)."""
    while hasattr(layer, "layer") and not hasattr(layer, "_is_graph_network"):
        layer = layer.layer
    return layer


def has_kernel(layer: Any) -> bool:
    inner = unwrap(layer)
    return any(getattr(inner, a, None) is not None for a in KERNEL_ATTRS) or (
        bool(inner.weights) and type(inner).__name__ in _KERNEL_CLASSES)


def _is_model(layer: Any) -> bool:
    return getattr(layer, "_is_graph_network", False) or isinstance(layer, _k().Sequential)


def output_roles(model: Any) -> dict[str, list[str]]:
    """{layer: [kernel-free layers between it and the output, output side first]}."""
    found: dict[str, list[str]] = {}
    _walk_back(model, list(model.outputs), "", found)
    return found


def _walk_back(model: Any, tensors: list, prefix: str, found: dict, via: tuple = ()) -> None:
    k = _k()
    seen = set()
    stack = [(t, tuple(via)) for t in tensors]
    while stack:
        t, path = stack.pop()
        layer, node_index, tensor_index = t._keras_history  # noqa: SLF001 - tf_keras graph internals
        key = (id(layer), node_index)
        if key in seen:
            continue
        seen.add(key)
        if isinstance(layer, k.layers.InputLayer):
            continue
        if _is_model(layer):
            sub: dict[str, list[str]] = {}
            _walk_back(layer, [layer.outputs[tensor_index]], f"{prefix}{layer.name}/", sub, path)
            found.update(sub)
            if not sub:  # nothing with a kernel inside: keep walking outside
                node = layer._inbound_nodes[node_index]  # noqa: SLF001
                stack.extend((x, path + (prefix + layer.name,)) for x in node.keras_inputs)
            continue
        name = prefix + layer.name
        if has_kernel(layer):
            found.setdefault(name, list(path))
            continue
        node = layer._inbound_nodes[node_index]  # noqa: SLF001
        stack.extend((x, path + (name,)) for x in node.keras_inputs)


def output_layers(model: Any) -> set[str]:
    return set(output_roles(model))


def input_layers(model: Any) -> set[str]:
    found: set[str] = set()
    _walk_forward(model, "", found)
    return found


def _walk_forward(model: Any, prefix: str, found: set) -> None:
    k = _k()
    members = {id(layer) for layer in model.layers}
    stack = [t._keras_history.layer for t in model.inputs]  # noqa: SLF001
    seen = set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        for node in layer._outbound_nodes:  # noqa: SLF001
            consumer = node.outbound_layer
            if id(consumer) not in members:
                continue  # a node of a shared layer that belongs to another model
            if _is_model(consumer):
                before = len(found)
                _walk_forward(consumer, f"{prefix}{consumer.name}/", found)
                if len(found) == before:
                    stack.append(consumer)
            elif not isinstance(consumer, k.layers.InputLayer) and has_kernel(consumer):
                found.add(prefix + consumer.name)
            else:
                stack.append(consumer)


def embedding_layers(model: Any) -> set[str]:
    k = _k()
    return {layer.name for layer in model.layers if isinstance(unwrap(layer), k.layers.Embedding)}


def layer_roles(model: Any) -> dict[str, set[str]]:
    """{layer name: {roles}} for the layers that have a role."""
    roles: dict[str, set[str]] = {}
    for role, names in (("output", output_layers(model)), ("input", input_layers(model)),
                        ("embedding", embedding_layers(model))):
        for name in names:
            roles.setdefault(name, set()).add(role)
    return roles
