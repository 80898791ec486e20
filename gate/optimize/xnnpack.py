"""Why tfmot's PruneForLatencyOnXNNPack refuses a model, naming the layer and the condition.

Mirrors tfmot 0.8.1 sparsity/keras/pruning_policy.py
(PruneForLatencyOnXNNPack.ensure_model_supports_pruning), which raises only one of three
generic messages ("Could not find `Conv2D 3x3` layer with stride 2x2, ...", "Could not
find a `GlobalAveragePooling2D` layer in all output branches", "Layer <Class> is not
supported for the PruneForLatencyOnXNNPack pruning policy") without the layer's name.
Agreed with tfmot's accept/refuse on all 11 cases of the zoo (stock keras.applications
models and patched variants).

    problems = xnnpack_problems(model)   # [] when tfmot would accept the model

The policy wants the stem XNNPACK's sparse kernels start from: a Conv2D 3x3 over 3 input
channels, strides 2, padding 'valid', fed only by ZeroPadding2D(((1, 1), (1, 1))), and
symmetric padding before every stride-2 depthwise conv. Stock keras.applications
MobileNets use padding 'same' or asymmetric ((0, 1), (0, 1)) pads, and patching the
padding of a trained model shifts its sampling grid (measured: MobileNetV2 0.77 -> 0.105):
such a model must be built and trained with symmetric padding.
"""
from __future__ import annotations

from typing import Any


def _k() -> Any:
    from gate.measure.tfenv import keras

    return keras()


def _tf() -> Any:
    from gate.measure.tfenv import tf

    return tf()


def _producers(layer):
    out = []
    for node in layer._inbound_nodes:  # noqa: SLF001
        ls = node.inbound_layers
        out.extend(ls if isinstance(ls, list) else [ls])
    return list(dict.fromkeys(out))


def _consumers(layer):
    k = _k()

    def unpack(lyr):
        return unpack(lyr.layers[0]) if isinstance(lyr, k.Sequential) else lyr
    return [unpack(n.outbound_layer) for n in layer._outbound_nodes]  # noqa: SLF001


def _pad(p):
    return tuple(tuple(x) for x in p)


def stem_problem(layer) -> str | None:
    """None if `layer` is the start tfmot wants: Conv2D 3x3 over 3 input channels,
    strides 2, padding 'valid', fed only by ZeroPadding2D(((1,1),(1,1)))."""
    k = _k()
    if not isinstance(layer, k.layers.Conv2D) or isinstance(layer, k.layers.DepthwiseConv2D):
        return f"'{layer.name}' ({type(layer).__name__}) is not a Conv2D"
    why = []
    ks = tuple(layer.kernel.shape[:3]) if hasattr(layer, "kernel") else None
    if ks != (3, 3, 3):
        why.append(f"kernel {ks[:2] if ks else None} over {ks[2] if ks else '?'} input channels (needs 3x3 over 3)")
    if tuple(layer.strides) != (2, 2):
        why.append(f"strides {tuple(layer.strides)} (needs (2, 2))")
    if layer.padding.lower() != "valid":
        why.append(f"padding '{layer.padding}' (needs 'valid' after ZeroPadding2D(((1, 1), (1, 1))))")
    prods = _producers(layer)
    if len(prods) != 1 or not isinstance(prods[0], k.layers.ZeroPadding2D):
        why.append("not fed by a ZeroPadding2D (fed by " + ", ".join(f"{type(p).__name__} '{p.name}'" for p in prods) + ")")
    elif _pad(prods[0].padding) != ((1, 1), (1, 1)):
        why.append(f"fed by ZeroPadding2D '{prods[0].name}' with padding {_pad(prods[0].padding)} (needs ((1, 1), (1, 1)))")
    return "; ".join(why) or None


def layer_problem(layer) -> str | None:
    """None if tfmot's _check_layer_support accepts the layer, else why not."""
    tf = _tf()
    k = _k()
    L = k.layers
    cls, name = type(layer).__name__, layer.name
    if isinstance(layer, (L.Add, L.Multiply, L.ZeroPadding2D, L.ReLU, L.LeakyReLU, L.ELU, L.Dropout)):
        return None
    if isinstance(layer, L.DepthwiseConv2D):
        prods = _producers(layer)
        zp = prods[0] if len(prods) == 1 and isinstance(prods[0], L.ZeroPadding2D) else None
        ks, st, pad = tuple(layer.kernel_size), tuple(layer.strides), layer.padding.lower()
        need = {3: ((1, 1), (1, 1)), 5: ((2, 2), (2, 2))}.get(ks[0]) if ks[0] == ks[1] else None
        ok = need is not None and layer.depth_multiplier == 1 and tuple(layer.dilation_rate) == (1, 1) and (
            (st == (1, 1) and pad == "same") or
            (st in ((1, 1), (2, 2)) and pad == "valid" and zp is not None and _pad(zp.padding) == need))
        if ok:
            return None
        if need is None:
            return f"DepthwiseConv2D '{name}': kernel {ks} (XNNPACK sparse supports 3x3 and 5x5)"
        if layer.depth_multiplier != 1 or tuple(layer.dilation_rate) != (1, 1):
            return f"DepthwiseConv2D '{name}': depth_multiplier {layer.depth_multiplier}, dilation {layer.dilation_rate}"
        if pad == "same":
            return f"DepthwiseConv2D '{name}': strides {st} with padding 'same' (only stride 1 may use 'same')"
        got = f"ZeroPadding2D '{zp.name}' padding {_pad(zp.padding)}" if zp else "no ZeroPadding2D in front"
        return (f"DepthwiseConv2D '{name}' {ks[0]}x{ks[1]} strides {st} padding 'valid' needs a preceding "
                f"ZeroPadding2D({need}); found {got}")
    if isinstance(layer, L.Conv2D):
        if layer.groups == 1 and tuple(layer.dilation_rate) == (1, 1) and tuple(layer.kernel_size) == (1, 1) \
                and tuple(layer.strides) == (1, 1):
            return None
        return (f"Conv2D '{name}': kernel {tuple(layer.kernel_size)}, strides {tuple(layer.strides)}, groups "
                f"{layer.groups}, dilation {tuple(layer.dilation_rate)} (inside the sparse subgraph only 1x1 stride-1 "
                "Conv2D is supported)")
    if isinstance(layer, L.GlobalAveragePooling2D):
        return None if layer.keepdims else f"GlobalAveragePooling2D '{name}': keepdims=False"
    if isinstance(layer, L.BatchNormalization):
        return None if list(layer.axis) == [3] else f"BatchNormalization '{name}': axis {list(layer.axis)} (needs [3])"
    if isinstance(layer, L.UpSampling2D):
        return None if layer.interpolation == "bilinear" else f"UpSampling2D '{name}': interpolation {layer.interpolation}"
    if isinstance(layer, L.Activation):
        fn = getattr(layer.activation, "__name__", str(layer.activation))
        ok = fn in ("relu", "relu6", "leaky_relu", "elu", "sigmoid")
        return None if ok else f"Activation '{name}': '{fn}' (supported: relu, relu6, leaky_relu, elu, sigmoid)"
    if cls == "TFOpLambda":
        fn = layer.function
        if fn in (tf.identity, tf.__operators__.add, tf.math.add, tf.math.subtract, tf.math.multiply) or \
                getattr(fn, "__name__", "") in ("identity", "add", "subtract", "multiply"):
            return None
        return f"TFOpLambda '{name}' (tf.{layer.get_config().get('function')}): only identity/add/subtract/multiply"
    return f"{cls} '{name}': not in the policy's supported layers"


def xnnpack_problems(model) -> list[str]:
    k = _k()
    if not getattr(model, "_is_graph_network", False) and not isinstance(model, k.Sequential):
        return ["subclassed model"]
    if not model.built:
        return ["model not built"]
    problems: list[str] = []
    # 1. forward from the inputs until a layer passing the stem test, on every branch
    #    (tfmot walks through anything else; a branch that ends first fails the model)
    start, stack, seen, candidates = [], [t._keras_history.layer for t in model.inputs], set(), []
    dead_end = None
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, k.layers.Conv2D) and not stem_problem(layer):
            start.append(layer)
            continue
        if isinstance(layer, k.layers.Conv2D) and not isinstance(layer, k.layers.DepthwiseConv2D):
            candidates.append(f"'{layer.name}': {stem_problem(layer)}")
        if isinstance(layer, k.Model):
            candidates.append(f"nested model '{layer.name}' is stepped over, not entered")
        nxt = _consumers(layer)
        if not nxt:
            dead_end = layer
            break
        stack.extend(nxt)
    if dead_end is not None or not start:
        first = candidates[0] if candidates else "no Conv2D on the way"
        problems.append("stem: no Conv2D 3x3 (3 input channels), strides 2, padding 'valid', fed by "
                        f"ZeroPadding2D(((1, 1), (1, 1))) on every input branch; first Conv2D seen: {first}")
        return problems
    # 2. backward from the outputs to a GlobalAveragePooling2D
    ends, stack, seen = set(), [t._keras_history.layer for t in model.outputs], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, k.layers.GlobalAveragePooling2D):
            ends.add(id(layer))
            continue
        prev = _producers(layer)
        if not prev or isinstance(layer, k.layers.InputLayer):
            problems.append(f"head: an output branch reaches '{layer.name}' without a GlobalAveragePooling2D")
            break
        stack.extend(prev)
    if problems:
        return problems
    # 3. every layer between the stem and the GAP
    stack = [c for s in start for c in _consumers(s)]
    seen = set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if id(layer) in ends:
            continue
        why = layer_problem(layer)
        if why:
            problems.append(why)
        stack.extend(_consumers(layer))
    return problems
