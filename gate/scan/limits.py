"""What the scan enforces and what it returns."""
from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

TRUST_HINT = ("if you trust this model's code, set trust_model_code: true in the base "
              "branch's config")


@dataclass(frozen=True)
class ScanLimits:
    """Upper bounds the scan enforces before anything is extracted or parsed."""

    max_members: int = 10_000                 # zip members in a .keras file
    max_uncompressed_bytes: int = 2 * GIB     # sum of declared member sizes
    max_ratio: float = 200.0                  # uncompressed / compressed, per member
    max_config_bytes: int = 64 * MIB          # config.json / model_config JSON text
    max_depth: int = 64                       # JSON nesting depth, HDF5 group depth
    max_file_bytes: int = 2 * GIB             # the model file (or SavedModel directory)
    max_objects: int = 200_000                # HDF5 links visited, TFLite tables


@dataclass(frozen=True)
class ScanResult:
    """What the scan saw. layer_classes and n_layers cover the root model and every layer
    nested under `layers`, `layer`, `forward_layer`, `backward_layer`, `cell`, `cells`
    (a wrapper and the layer it wraps count separately); empty for tflite/savedmodel."""

    format: str                       # "keras" | "h5" | "savedmodel" | "tflite"
    file_bytes: int
    layer_classes: tuple[str, ...]    # sorted class names of the model and its layers
    n_layers: int                     # layer objects below the root model (nested included)
    notes: tuple[str, ...] = ()
    flavour: str | None = None        # Keras files: "keras3" | "tf_keras" (gate.scan.keras3.flavour_of)


