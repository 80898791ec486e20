"""Quantization-aware training (tfmot.quantization.keras), whole model or selective, with
the collaborative schemes: preserve [sparsity] -> PQAT, [clusters] -> CQAT, both -> PCQAT.

The QAT model keeps its fake-quant wrappers: the converter turns them into int8 kernels.
"""
from __future__ import annotations

from typing import Any

from gate.config.steps import LayerSelect, Preserve, QatStep
from gate.errors import PolicyError
from gate.optimize.context import StepContext, StepOutput
from gate.optimize.finetune import compile_for, copy_model, fit
from gate.optimize.select import choose, select_layers, wrap_chosen


def scheme_for(preserve: list[Preserve]) -> tuple[Any, str]:
    from gate.measure.tfenv import tfmot

    t = tfmot()
    kinds = set(preserve)
    if kinds == {Preserve.sparsity, Preserve.clusters}:
        return t.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True), "PCQAT"
    if kinds == {Preserve.clusters}:
        return t.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False), "CQAT"
    if kinds == {Preserve.sparsity}:
        return t.experimental.combine.Default8BitPrunePreserveQuantizeScheme(), "PQAT"
    return t.quantization.keras.default_8bit.Default8BitQuantizeScheme(), "QAT"


def _unsupported(layer: Any) -> str | None:
    from gate.measure.tfenv import tfmot

    registry = tfmot().quantization.keras.default_8bit.Default8BitQuantizeRegistry()
    return None if registry.supports(layer) else f"unsupported by tfmot QAT ({type(layer).__name__})"


def apply(model: Any, spec: QatStep, ctx: StepContext) -> StepOutput:
    from gate.measure.tfenv import keras, tfmot

    k, qk = keras(), tfmot().quantization.keras
    work = copy_model(model)
    scheme, name = scheme_for(spec.preserve)
    if spec.layers is None:
        bad = [(layer.name, type(layer).__name__) for layer in work.layers
               if not isinstance(layer, k.layers.InputLayer) and _unsupported(layer)]
        if bad:
            listed = ", ".join(f"'{n}' ({c})" for n, c in bad)
            raise PolicyError(f"qat: tfmot cannot quantize {listed}", field="steps.qat",
                              hint="use selective QAT: qat: {layers: {exclude_names: [" +
                                   ", ".join(n for n, _ in bad) + "]}} (those layers stay float)")
        annotated = qk.quantize_annotate_model(work)
        selection = select_layers(work.layers, LayerSelect(), _unsupported).to_dict()
    else:
        sel = choose(work.layers, spec.layers, _unsupported, "qat")
        annotated = wrap_chosen(work, sel.chosen, qk.quantize_annotate_layer)
        selection = sel.to_dict()
    try:
        with qk.quantize_scope():
            quantized = qk.quantize_apply(annotated, scheme)
    except (ValueError, RuntimeError) as exc:
        raise PolicyError(f"qat: tfmot refused the model: {exc}", field="steps.qat",
                          hint="use the selective form: qat: {layers: {...}}") from None
    compile_for(quantized, spec.finetune, ctx.compile_info, step="qat")
    fit(quantized, spec.finetune, ctx.x, ctx.y)
    return StepOutput(quantized, selection, [f"scheme: {name} ({type(scheme).__name__})"])
