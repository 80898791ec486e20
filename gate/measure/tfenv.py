"""The one place TensorFlow, tf_keras and Keras 3 are imported, lazily, and where tfmot
itself is imported first (`tfmot()`, after the environment below is set). gate/optimize/
also imports tfmot's internals (its registries and layout transforms) directly, inside
its functions, always after `tfmot()` (tests/test_layers.py allows tfmot in measure/ and
optimize/ only).

tfmot 0.8.1 needs Keras 2, so TF_USE_LEGACY_KERAS=1 must be set before TensorFlow is
imported; with it `tf.keras` is tf_keras, while `import keras` is still Keras 3 (both
coexist on TF 2.21): Keras 3 files load with `keras3()`, everything tfmot touches is
tf_keras. Modules that need TF call these functions inside their own functions; nothing
imports TF at module level, so `gate --help`, config validation, rendering and GitHub
posting stay fast.
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Iterator


def _prepare_env() -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Reproducible numerics across runs (oneDNN reorders float sums otherwise).
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


@functools.cache
def tf():
    _prepare_env()
    import tensorflow

    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow


def lite_convert():
    """TensorFlow's `tensorflow.lite.python.convert` (mlir_quantize: the step the
    QuantizationDebugger's denylist goes through; gate.measure.fallback)."""
    tf()
    from tensorflow.lite.python import convert

    return convert


@functools.cache
def keras():
    tf()
    import tf_keras

    return tf_keras


@functools.cache
def keras3():
    """Keras 3 (`import keras`), for files saved by it (gate.scan.keras3)."""
    tf()
    import keras

    return keras


@functools.cache
def tfmot():
    keras()
    import tensorflow_model_optimization

    return tensorflow_model_optimization


@contextlib.contextmanager
def tf_keras_v3_loading() -> Iterator[None]:
    """The state tf_keras' saving_lib.load_model deserializes a .keras config in (the
    "saving v3" flag and an object-sharing scope), for gate.measure.model's loader that
    reads the weights from an extracted file. Private names of tf_keras 2.21, pinned."""
    keras()
    from tf_keras.src.saving import saving_lib
    from tf_keras.src.saving.serialization_lib import ObjectSharingScope

    before = getattr(saving_lib._SAVING_V3_ENABLED, "value", False)
    saving_lib._SAVING_V3_ENABLED.value = True
    try:
        with ObjectSharingScope():
            yield
    finally:
        saving_lib._SAVING_V3_ENABLED.value = before


def tflite_schema() -> tuple[Any, Any]:
    """TensorFlow's TFLite flatbuffer schema (object API) and flatbuffer_utils."""
    tf()
    from tensorflow.lite.python import schema_py_generated
    from tensorflow.lite.tools import flatbuffer_utils

    return schema_py_generated, flatbuffer_utils
