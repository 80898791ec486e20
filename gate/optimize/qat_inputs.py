"""Integer inputs stay unquantized under QAT.

tfmot's layout transform (`InputLayerQuantize`, 0.8.1) puts a `QuantizeLayer` (a
FakeQuantWithMinMaxVars) after every model input that feeds an annotated layer — and
`plan()` asks the transform about every input. FakeQuant takes float32 only, so a model
with int32 token ids (Embedding) crashed inside tfmot with `Input 'inputs' of
'FakeQuantWithMinMaxVars' Op has type int32`. Token ids and other integer inputs are
indices, not values to fake-quantize: this scheme wrapper leaves them out of the layer
quantize map the transform matches against (its `candidate_layers`), so no QuantizeLayer
is added after them; the float inputs are quantized as before.
"""
from __future__ import annotations

from typing import Any


def non_float_inputs(model: Any) -> set[str]:
    """Names of the model's input layers whose tensors are not floating point."""
    names = set()
    for layer in getattr(model, "_input_layers", []):  # noqa: SLF001 - what quantize_apply itself reads
        dtype = getattr(getattr(layer, "output", None), "dtype", None)
        floating = getattr(dtype, "is_floating", None)
        if floating is None:
            floating = str(getattr(layer, "dtype", "float32")).startswith(("float", "bfloat", "half"))
        if not floating:
            names.add(layer.name)
    return names


class _FloatInputsTransform:
    def __init__(self, inner: Any):
        self.inner = inner

    def apply(self, model: Any, layer_quantize_map: dict) -> Any:
        skip = non_float_inputs(model)
        kept = {name: value for name, value in layer_quantize_map.items() if name not in skip}
        return self.inner.apply(model, kept)


class FloatInputsScheme:
    """A QuantizeScheme whose layout transform never quantizes a non-float input."""

    def __init__(self, inner: Any):
        self.inner = inner

    def get_layout_transformer(self) -> Any:
        return _FloatInputsTransform(self.inner.get_layout_transformer())

    def get_quantize_registry(self) -> Any:
        return self.inner.get_quantize_registry()
