"""The one place TensorFlow, tf_keras and tfmot are imported, lazily.

tfmot 0.8.1 needs Keras 2, so TF_USE_LEGACY_KERAS=1 must be set before TensorFlow is
imported. Modules that need TF call these functions inside their own functions;
nothing imports TF at module level, so `gate --help`, config validation, rendering and
GitHub posting stay fast.
"""
from __future__ import annotations

import functools
import os


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


@functools.cache
def keras():
    tf()
    import tf_keras

    return tf_keras


@functools.cache
def tfmot():
    keras()
    import tensorflow_model_optimization

    return tensorflow_model_optimization
