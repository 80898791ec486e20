"""gate.scan: inspect a model file without executing or deserializing it.

The scan runs before anything hands the file to Keras or TensorFlow. It looks only at
bytes, zip metadata, HDF5 structure and JSON configs, and refuses (with `ModelError`)
anything that could run code, read other files, or exhaust memory or disk when loaded:

* `.keras` (zip): member count, total size, compression ratio, path traversal, symlink
  members; then the `config.json` object tree and the structure of `model.weights.h5`.
* `.h5` / `.hdf5`: soft and external links, external or virtual dataset storage, then
  the `model_config` (and `training_config`) object trees.
* SavedModel directories: a TensorFlow program, so refused unless trust_model_code.
* `.tflite`: the "TFL3" identifier and the bounds of the flatbuffer's top-level tables.

In a config tree every dict with a `class_name` is something Keras will look up and
instantiate. Each must name an allowlisted built-in Keras / tf_keras / tfmot class, with
a `module` inside the allowed packages; Lambda-style layers and serialized Python code
are refused unless the base branch sets trust_model_code.

Only the standard library and (lazily, for HDF5) h5py are imported: never TensorFlow or Keras.
"""
from __future__ import annotations

from gate.scan.dispatch import ScanLimits, ScanResult, scan_model

__all__ = ["ScanLimits", "ScanResult", "scan_model"]
