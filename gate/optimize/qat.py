"""Quantization-aware training (tfmot.quantization.keras), whole model or selective, with
the collaborative schemes: preserve [sparsity] -> PQAT, [clusters] -> CQAT, both -> PCQAT.

What can be quantized is tfmot's decision, not a per-layer registry pre-check: the model
goes through the scheme's own layout transform -- the `get_layout_transformer().apply`
that `quantize_apply` runs, which folds Conv/Dense + BatchNorm (+ReLU) and rewires
Concatenate -- and then every layer gets the treatment of quantize_apply's clone step:

    quantize_config = map[layer].quantize_config          # set by a transform (a folded BN)
    if not quantize_config and registry.supports(layer):
        quantize_config = registry.get_quantize_config(layer)   # may raise (collab schemes)
    if not quantize_config: "Layer X is not supported"

plus what QuantizeWrapper.build refuses later (an Activation's function, a kernel layer's
fused activation) and one conversion rule measured on DenseNet121 (an AveragePooling
feeding a Concatenate). Those layers are left unannotated -- float, calibrated by the
converter -- with tfmot's reason; the model is never refused for them. quantize_apply
then verifies it: should tfmot still name a layer, that layer is left float too and the
apply retried (bounded).

The QAT model keeps its fake-quant wrappers: the converter turns them into int8 kernels.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gate.config.steps import Preserve, QatStep
from gate.errors import PolicyError
from gate.optimize.context import StepContext, StepOutput
from gate.optimize.finetune import compile_for, copy_model, fit
from gate.optimize.select import choose, model_roles, wrap_chosen

# Activations QuantizeAwareActivation accepts on a kernel layer (tfmot 0.8.1
# quantize_aware_activation: _PRE/_POST/_NO_QUANTIZE_ACTIVATIONS). relu6 is not among them.
KERNEL_ACTIVATIONS = frozenset({"softmax", "sigmoid", "tanh", "gelu", "linear", "relu", "swish", "NoOpActivation"})
# Activation-layer functions Default8BitActivationQuantizeConfig accepts (tfmot 0.8.1).
ACTIVATION_LAYER_FUNCS = frozenset({"relu", "swish", "gelu", "relu6", "linear", "softmax", "sigmoid", "tanh"})
MAX_RETRIES = 20

_NOT_SUPPORTED = re.compile(r"Layer (?P<name>[^:\s]+):<class '(?P<cls>[^']+)'> is not supported")


@dataclass(frozen=True)
class FloatLayer:
    """A layer tfmot cannot quantize, left float (the converter calibrates it)."""

    layer: str
    cls: str
    reason: str

    def to_dict(self) -> dict:
        return {"layer": self.layer, "class": self.cls, "reason": self.reason}


def scheme_for(preserve: list[Preserve]) -> tuple[Any, str]:
    """The tfmot scheme for the step, wrapped so integer inputs stay unquantized."""
    from gate.optimize.qat_inputs import FloatInputsScheme

    scheme, name = _tfmot_scheme(preserve)
    return FloatInputsScheme(scheme), name


def _tfmot_scheme(preserve: list[Preserve]) -> tuple[Any, str]:
    from gate.measure.tfenv import tfmot

    t = tfmot()
    kinds = set(preserve)
    if kinds == {Preserve.sparsity, Preserve.clusters}:
        return HonestScheme(t.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)), \
            "PCQAT"
    if kinds == {Preserve.clusters}:
        return HonestScheme(t.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False)), \
            "CQAT"
    if kinds == {Preserve.sparsity}:
        return HonestScheme(t.experimental.combine.Default8BitPrunePreserveQuantizeScheme()), "PQAT"
    return t.quantization.keras.default_8bit.Default8BitQuantizeScheme(), "QAT"


class HonestRegistry:
    """A quantize registry whose supports() is True only when get_quantize_config works.

    tfmot 0.8.1's collaborative registries (Default8bitPrunePreserveQuantizeRegistry,
    Default8bitClusterPreserveQuantizeRegistry) say supports() for every layer without
    trainable weights (Rescaling, Multiply, TFOpLambda, ...) and then raise ValueError in
    get_quantize_config. quantize_apply asks supports() of every unannotated layer that
    feeds an annotated one (for an output quantizer) and crashed on it (measured: prune-int8
    on MobileNetV3Small, Rescaling -> Conv). With this, such a layer stays float, as it does
    under the default scheme, whose registry answers supports() honestly."""

    def __init__(self, inner: Any):
        self.inner = inner

    def supports(self, layer: Any) -> bool:
        if not self.inner.supports(layer):
            return False
        try:
            self.inner.get_quantize_config(layer)
        except (ValueError, RuntimeError):
            return False
        return True

    def get_quantize_config(self, layer: Any) -> Any:
        return self.inner.get_quantize_config(layer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class HonestScheme:
    """A collaborative QuantizeScheme with its registry made honest (HonestRegistry)."""

    def __init__(self, inner: Any):
        self.inner = inner

    def get_layout_transformer(self) -> Any:
        return self.inner.get_layout_transformer()

    def get_quantize_registry(self) -> Any:
        return HonestRegistry(self.inner.get_quantize_registry())


def scheme_label(scheme: Any) -> str:
    """The tfmot scheme's class name, under our wrappers."""
    while hasattr(scheme, "inner"):
        scheme = scheme.inner
    return type(scheme).__name__


# --------------------------------------------------------------------------- the decision

def _describe(layer: Any) -> str:
    cls = type(layer).__name__
    if cls in ("TFOpLambda", "SlicingOpLambda"):
        return f"{cls} (tf.{layer.get_config().get('function')})"
    return cls


def _producers(layer: Any) -> list[str]:
    names = []
    for node in layer._inbound_nodes:  # noqa: SLF001 - tf_keras graph internals
        inbound = node.inbound_layers if isinstance(node.inbound_layers, list) else [node.inbound_layers]
        names.extend(f"{type(lyr).__name__} '{lyr.name}'" for lyr in inbound)
    return names


def _unsupported_reason(layer: Any, registry_name: str) -> str:
    from gate.measure.tfenv import keras

    if isinstance(layer, keras().layers.BatchNormalization):
        prev = ", ".join(_producers(layer)) or "the model input"
        return (f"BatchNormalization after {prev}: tfmot folds a BN only directly after Conv2D/DepthwiseConv2D/"
                "Dense with a linear activation, and has no QuantizeConfig for a BN on its own")
    return f"{_describe(layer)}: no QuantizeConfig in tfmot's {registry_name}"


def _build_check(layer: Any, qc: Any) -> str | None:
    """What QuantizeWrapper.build / QuantizeAwareActivation would refuse later."""
    from gate.measure.tfenv import keras

    try:
        qc.get_weights_and_quantizers(layer)
        acts = qc.get_activations_and_quantizers(layer)
        qc.get_output_quantizers(layer)
    except (ValueError, RuntimeError, AttributeError) as exc:
        return f"{_describe(layer)}: {type(qc).__name__} refuses it: {str(exc).splitlines()[0][:200]}"
    if isinstance(layer, keras().layers.Activation):
        name = getattr(layer.activation, "__name__", type(layer.activation).__name__)
        if name not in ACTIVATION_LAYER_FUNCS:
            return (f"Activation('{name}'): tfmot's Default8BitActivationQuantizeConfig supports only "
                    f"{', '.join(sorted(ACTIVATION_LAYER_FUNCS))}")
    for act, _quantizer in acts or []:
        name = getattr(act, "__name__", type(act).__name__)
        if name not in KERNEL_ACTIVATIONS:
            return (f"{type(layer).__name__} with activation='{name}': tfmot's QuantizeAwareActivation supports "
                    f"only {', '.join(sorted(KERNEL_ACTIVATIONS - {'NoOpActivation'}))}")
    return None


def plan(model: Any, scheme: Any) -> list[FloatLayer]:
    """The layers quantize_apply with `scheme` cannot quantize on `model` (flat: nested
    models inlined first), each with tfmot's reason. The model is not modified."""
    from gate.measure.tfenv import keras

    k = keras()
    work = copy_model(model)
    lqm: dict[str, dict] = {}
    float_layers: list[FloatLayer] = []
    for layer in work.layers:
        if isinstance(layer, k.layers.InputLayer):
            continue
        if isinstance(layer, k.layers.Lambda):
            float_layers.append(FloatLayer(layer.name, "Lambda", "Lambda: tfmot's quantize_annotate_model skips "
                                                                  "Lambda layers (their code cannot be inspected)"))
            continue
        lqm[layer.name] = {"quantize_config": None}
    for inp in work._input_layers:  # noqa: SLF001 - quantize_apply adds the inputs that feed annotated layers
        if any(n.outbound_layer.name in lqm for n in inp._outbound_nodes):  # noqa: SLF001
            lqm[inp.name] = {}
    from gate.optimize.qat_bisect import transform_leaving_float

    transformer = scheme.get_layout_transformer()
    (transformed, lqm2), broken = transform_leaving_float(
        lambda m: transformer.apply(work, m), lqm, [layer.name for layer in work.layers],
        {layer.name: type(layer).__name__ for layer in work.layers})
    float_layers += [FloatLayer(name, cls, why) for name, cls, why in broken]
    registry = scheme.get_quantize_registry()
    registry = getattr(registry, "inner", registry)    # plan() asks get_quantize_config itself, for the reason
    rname = type(registry).__name__
    for layer in transformed.layers:
        if isinstance(layer, k.layers.InputLayer) or layer.name not in lqm2:
            continue
        qc = lqm2[layer.name].get("quantize_config")
        why = None
        if not qc:
            try:
                if registry.supports(layer):
                    qc = registry.get_quantize_config(layer)
            except (ValueError, RuntimeError) as exc:
                why = f"{_describe(layer)}: {rname}.get_quantize_config raised: {str(exc).splitlines()[0][:200]}"
        if not qc and why is None:
            why = _unsupported_reason(layer, rname)
        if qc and why is None:
            why = _build_check(layer, qc)
        if why is None and isinstance(layer, (k.layers.AveragePooling2D, k.layers.AveragePooling1D)) and any(
                isinstance(n.outbound_layer, k.layers.Concatenate) for n in layer._outbound_nodes):  # noqa: SLF001
            # Measured on DenseNet121's transition blocks (1x1 conv -> AveragePooling2D -> Concatenate):
            # tfmot's ConcatTransform gives the pooling's output the concat's range, and TFLite's int8
            # AVERAGE_POOL_2D needs input scale == output scale, so the QAT model does not convert.
            why = (f"{type(layer).__name__} feeding a Concatenate: tfmot's ConcatTransform gives its output the "
                   "concat's range, but int8 AVERAGE_POOL_2D needs its input's scale (the converter's 'same scale "
                   "constraint' error)")
        if why:
            float_layers.append(FloatLayer(layer.name, type(layer).__name__, why))
    return float_layers


# --------------------------------------------------------------------------- annotate + apply

def quantize_apply_checked(annotated: Any, scheme: Any, left: list[FloatLayer]) -> Any:
    """tfmot's quantize_apply under quantize_scope. Should tfmot still name an unsupported
    layer, it is unwrapped, recorded in `left` and the apply retried."""
    from gate.measure.tfenv import keras, tfmot

    k, qk = keras(), tfmot().quantization.keras
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_annotate import QuantizeAnnotate

    for _ in range(MAX_RETRIES):
        try:
            with qk.quantize_scope():
                return qk.quantize_apply(annotated, scheme)
        except RuntimeError as exc:
            found = _NOT_SUPPORTED.search(str(exc))
            if not found:
                raise
            name = found.group("name")
            left.append(FloatLayer(name, found.group("cls").rsplit(".", 1)[-1],
                                   f"tfmot quantize_apply: {str(exc).splitlines()[0][:200]}"))

            def unwrap(layer: Any, name: str = name) -> Any:
                return layer.layer if isinstance(layer, QuantizeAnnotate) and layer.layer.name == name else layer

            weights = annotated.get_weights()
            annotated = k.models.clone_model(annotated, clone_function=unwrap)
            annotated.set_weights(weights)
    raise PolicyError(f"qat: tfmot's quantize_apply still refuses the model after leaving {len(left)} layers float",
                      field="steps.qat")


def quantize(model: Any, scheme: Any, left: list[FloatLayer], chosen: tuple[str, ...] | None = None) -> Any:
    """The QAT model: every layer annotated except those left float (or only `chosen`),
    then tfmot's quantize_apply (checked). `left` grows if tfmot names another layer.
    `model` must be the caller's own copy (the annotation shares its layers)."""
    from gate.measure.tfenv import keras, tfmot

    k, qk = keras(), tfmot().quantization.keras
    skip = {f.layer for f in left}
    if chosen is None:
        def annotate(layer: Any) -> Any:
            if isinstance(layer, (k.layers.InputLayer, k.layers.Lambda)) or layer.name in skip:
                return layer
            return qk.quantize_annotate_layer(layer)
        annotated = k.models.clone_model(model, clone_function=annotate)
        annotated.set_weights(model.get_weights())
    else:
        annotated = wrap_chosen(model, chosen, qk.quantize_annotate_layer)
    try:
        return quantize_apply_checked(annotated, scheme, left)
    except (ValueError, RuntimeError) as exc:
        from gate.errors import OptimizationError

        raise OptimizationError(f"qat: tfmot's quantize_apply failed on the model: {type(exc).__name__}: "
                                f"{str(exc)[:400]}", field="steps.qat",
                                hint="use a post-training policy (int8, dynamic-range, int16x8), or prune/cluster "
                                     "followed by int8 instead of qat") from None


def _unsupported_for(float_names: dict[str, FloatLayer]):
    def unsupported(layer: Any) -> str | None:
        found = float_names.get(layer.name)
        return None if found is None else f"left float: {found.reason}"
    return unsupported


def selection_for(model: Any, spec: QatStep, left: list[FloatLayer], roles: dict | None = None):
    """The layers a qat step annotates (selective form) or None (every layer tfmot can
    quantize), and the Selection report of the layers with weights."""
    from gate.config.steps import LayerSelect
    from gate.optimize.select import select_layers

    unsupported = _unsupported_for({f.layer: f for f in left})
    if spec.layers is None:
        return None, select_layers(model.layers, LayerSelect(), unsupported)
    sel = choose(model.layers, spec.layers, unsupported, "qat", roles)
    return sel.chosen, sel


def apply(model: Any, spec: QatStep, ctx: StepContext) -> StepOutput:
    work = copy_model(model)
    scheme, name = scheme_for(spec.preserve)
    planned = getattr(ctx.plan, "left_float", None)
    left = list(planned) if ctx.plan is not None else plan(work, scheme)   # the preflight made the decision
    chosen, sel = selection_for(work, spec, left, model_roles(work, spec.layers))
    quantized = quantize(work, scheme, left, chosen)
    compile_for(quantized, spec.finetune, ctx.compile_info, step="qat")
    fit(quantized, spec.finetune, ctx.x, ctx.y, ctx=ctx)
    selection = sel.to_dict()
    selection["left_float"] = [f.to_dict() for f in left]
    notes = [f"scheme: {name} ({scheme_label(scheme)})"]
    if left:
        notes.append(float_summary(left))
    return StepOutput(quantized, selection, notes)


def float_summary(left: list[FloatLayer], limit: int = 4) -> str:
    """One line for many layers: '53 layers left float (tfmot cannot quantize them): 50
    BatchNormalization, 3 AveragePooling2D; e.g. 'conv2_block1_0_bn': BatchNormalization
    after ...'."""
    from collections import Counter

    counts = Counter(f.cls for f in left)
    classes = ", ".join(f"{n} {c}" for c, n in counts.most_common())
    shown = "; ".join(f"'{f.layer}': {f.reason}" for f in _one_per_class(left)[:limit])
    return (f"{len(left)} layer(s) left float (tfmot cannot quantize them; the converter calibrates them): "
            f"{classes}. First of each: {shown}")


def _one_per_class(left: list[FloatLayer]) -> list[FloatLayer]:
    seen, out = set(), []
    for f in left:
        if f.cls not in seen:
            seen.add(f.cls)
            out.append(f)
    return out
