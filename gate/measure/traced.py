"""Convert a tf_keras model from one traced concrete function instead of through a SavedModel.

`TFLiteConverter.from_keras_model` first saves the model as a SavedModel and loads it
back. For a tf_keras model that save is the legacy Keras serialization, which traces the
call functions of every layer (about 2,700 concrete functions for MobileNetV2): 90 % of
the conversion time (MobileNetV2-0.35, 155 layers: 14 s; a ResNet50: 27 s). Here the model
is traced once with `training=False` and the converter works on that frozen function
(`experimental_lower_to_saved_model = False`), so nothing is saved. That route writes no
SignatureDef, and the gate runs every .tflite by signature: `add_signature` writes the one
the SavedModel route would have written (`serving_default`, inputs by input name, outputs
by the model's output names), so the file is used exactly as before.

Only for functional/sequential tf_keras models without recurrent layers (the SavedModel
route is what fuses RNN ops); Keras 3 models export themselves (gate.measure.convert).
"""
from __future__ import annotations

from typing import Any


def traced_converter(model: Any, tf: Any) -> tuple[Any, list[str], list[str]]:
    """(converter, input names in the function's order, output names in its order)."""
    from gate.measure.model import keras_io

    inputs, outputs = keras_io(model)
    in_names = [name for name, _ in inputs]
    specs = [tf.TensorSpec(t.shape, t.dtype, name=name) for name, t in inputs]
    if len(specs) == 1:
        fn = tf.function(lambda x: model(x, training=False))
    else:
        fn = tf.function(lambda *xs: model(list(xs), training=False))
    concrete = fn.get_concrete_function(*specs)
    structure = concrete.structured_outputs
    if isinstance(structure, dict):         # dict outputs flatten in sorted key order
        out_names = [str(key) for key in sorted(structure)]
    else:
        out_names = [name for name, _ in outputs]
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    conv.experimental_lower_to_saved_model = False
    return conv, in_names, out_names


def by_position(gen: Any, names: list[str]) -> Any:
    """The representative dataset's dicts (by input name) as lists in the function's input
    order: without a SignatureDef the calibrator feeds inputs by position."""
    def ordered():
        for sample in gen():
            yield [sample[name] for name in names]
    return ordered


def add_signature(content: bytes, in_names: list[str], out_names: list[str]) -> bytes:
    """The .tflite with a `serving_default` SignatureDef over subgraph 0's inputs and
    outputs (in order), named as given."""
    from gate.measure.tfenv import tflite_schema
    from gate.measure.tflite_rewrite import serving_signature

    schema, utils = tflite_schema()
    model = utils.convert_bytearray_to_object(bytearray(content))
    graph = model.subgraphs[0]
    if len(graph.inputs) != len(in_names) or len(graph.outputs) != len(out_names):
        raise ValueError(f"the converted graph has {len(graph.inputs)} input(s) and {len(graph.outputs)} "
                         f"output(s), the model {len(in_names)} and {len(out_names)}")

    model.signatureDefs = [serving_signature(schema, graph, in_names, out_names)]
    return bytes(utils.convert_object_to_bytearray(model))
