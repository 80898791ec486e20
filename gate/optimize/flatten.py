"""Inline nested models (a Model used as a layer, e.g. a MobileNet base inside a
Sequential with a head) into one functional graph, so tfmot can wrap their layers.

The outer graph is re-traced node by node, as tf_keras' Functional._run_internal_graph
does, except that a nested model's own graph is re-traced in place of calling it. The
layers are the same objects, so the weights are kept (callers pass a copy). A nested
model called with `training=False` (the tf.org transfer-learning pattern,
`base(x, training=False)`) keeps it: the flag is passed on to every inlined layer that
takes one (BatchNormalization, Dropout), so the flat model computes what the nested one
did; a call with `mask=` is refused."""
from __future__ import annotations

from typing import Any

from gate.errors import PolicyError


def nested_models(model: Any) -> list[str]:
    from gate.measure.tfenv import keras

    return [layer.name for layer in model.layers if isinstance(layer, keras().Model)]


def _retrace(model: Any, inputs: list, training: Any = None) -> list:
    from gate.measure.tfenv import keras, tf

    k, t = keras(), tf()
    tensor_dict: dict[str, list] = {}
    usage = model._tensor_usage_count  # noqa: SLF001 - tf_keras graph internals, stable in 2.x
    for x, y in zip(model.inputs, inputs):
        tensor_dict[str(id(x))] = [y] * usage[str(id(x))]
    for depth in sorted(model._nodes_by_depth, reverse=True):  # noqa: SLF001
        for node in model._nodes_by_depth[depth]:  # noqa: SLF001
            if node.is_input or any(i not in tensor_dict for i in node.flat_input_ids):
                continue
            args, kwargs = node.map_arguments(tensor_dict)
            layer = node.layer
            if isinstance(layer, k.Model):
                if kwargs.get("mask") is not None:
                    raise PolicyError(f"cannot flatten nested model '{layer.name}': it is called with a mask= "
                                      "argument", field="policy.steps")
                inner_training = kwargs.pop("training", None)
                outputs = _retrace(layer, t.nest.flatten(args), training if inner_training is None else inner_training)
                outputs = outputs[0] if len(outputs) == 1 else outputs
            else:
                if training is not None and layer._expects_training_arg and kwargs.get("training") is None:  # noqa: SLF001
                    kwargs["training"] = training
                outputs = layer(*args, **kwargs)
            for x_id, y in zip(node.flat_output_ids, t.nest.flatten(outputs)):
                tensor_dict[x_id] = [y] * usage[x_id]
    return [tensor_dict[str(id(x))].pop() for x in model.outputs]


def flatten(model: Any) -> Any:
    """One functional model with the nested models' layers inlined."""
    from gate.measure.tfenv import keras

    k = keras()
    names = list(getattr(model, "input_names", None) or [])   # kept: data and signatures go by input name
    if len(names) != len(model.inputs):
        names = [None] * len(model.inputs)
    inputs = [k.Input(shape=x.shape[1:], dtype=x.dtype, name=n) for x, n in zip(model.inputs, names)]
    try:
        outputs = _retrace(model, inputs)
    except PolicyError:
        raise
    except Exception as exc:  # noqa: BLE001 - any tracing failure means: cannot flatten safely
        raise PolicyError(f"cannot flatten the nested models {', '.join(nested_models(model))}: "
                          f"{type(exc).__name__}: {exc}", field="policy.steps",
                          hint="rebuild the model as one functional graph, or use a PTQ-only policy") from None
    flat = k.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name)
    left = nested_models(flat)
    if left:
        raise PolicyError(f"cannot flatten nested models: {', '.join(left)}", field="policy.steps")
    return flat
