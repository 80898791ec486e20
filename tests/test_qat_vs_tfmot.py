"""The gate's QAT is held to tfmot's own `quantize_model` on the same graphs: where
quantize_model works the gate leaves nothing float; where it fails (a BN after a concat
or an add, Rescaling, TFOpLambda arithmetic, squeeze-excite Multiply, a nested model), the
gate leaves exactly the layers tfmot cannot quantize float -- each with a reason -- and
tfmot's quantize_apply takes the rest as they are."""
from __future__ import annotations

import numpy as np
import pytest

from gate.optimize.flatten import flatten, nested_models
from gate.optimize.qat import plan, quantize, scheme_for


@pytest.fixture(scope="module")
def k():
    from gate.measure.tfenv import keras

    return keras()


def conv_bn(k, x, filters, **kw):
    L = k.layers
    return L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 3, padding="same", **kw)(x)))


def conv_bn_cnn(k):
    i = k.Input((8, 8, 3))
    x = conv_bn(k, conv_bn(k, i, 8), 8)
    return k.Model(i, k.layers.Dense(10)(k.layers.GlobalAveragePooling2D()(x)))


def small_resnet(k):
    L = k.layers
    i = k.Input((8, 8, 3))
    x = conv_bn(k, i, 8)
    y = L.BatchNormalization()(L.Conv2D(8, 3, padding="same")(conv_bn(k, x, 8)))
    x = L.ReLU()(L.Add()([x, y]))
    return k.Model(i, L.Dense(10)(L.GlobalAveragePooling2D()(x)))


def dense_block(k):
    """DenseNet: BN -> ReLU -> Conv on a concatenation; a transition AveragePooling2D."""
    L = k.layers
    i = k.Input((8, 8, 3))
    x = conv_bn(k, i, 8)
    y = L.Conv2D(4, 3, padding="same")(L.ReLU()(L.BatchNormalization(name="pre_bn")(x)))
    x = L.Concatenate()([x, y])
    x = L.AveragePooling2D(name="pool")(L.Conv2D(8, 1)(L.ReLU()(L.BatchNormalization(name="cat_bn")(x))))
    z = L.Conv2D(4, 3, padding="same")(L.ReLU()(L.BatchNormalization(name="pool_bn")(x)))
    x = L.Concatenate()([x, z])
    return k.Model(i, L.Dense(10)(L.GlobalAveragePooling2D()(x)))


def preprocessing_and_hard_swish(k):
    """EfficientNet's Rescaling, MobileNetV3's hard-swish x * relu6(x + 3) / 6, an SE Multiply."""
    L = k.layers
    i = k.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same")(L.Rescaling(1 / 255.0, name="rescale")(i))
    x = L.Multiply(name="hswish")([x, L.ReLU(6.0)(x + 3.0) * (1 / 6)])
    s = L.Conv2D(8, 1, activation="sigmoid")(L.GlobalAveragePooling2D(keepdims=True)(x))
    x = L.Multiply(name="se")([x, s])
    return k.Model(i, L.Dense(10)(L.GlobalAveragePooling2D()(x)))


def nested(k):
    base = conv_bn_cnn(k)
    base = k.Model(base.inputs, base.layers[-2].output, name="base")
    i = k.Input((8, 8, 3))
    return k.Model(i, k.layers.Dense(10, name="head")(base(i, training=False)))


CASES = {
    "conv_bn_cnn": (conv_bn_cnn, set()),
    "small_resnet": (small_resnet, set()),
    "dense_block": (dense_block, {"BatchNormalization", "AveragePooling2D"}),
    "preprocessing_and_hard_swish": (preprocessing_and_hard_swish, {"Rescaling", "TFOpLambda", "Multiply"}),
    "nested": (nested, set()),
}


def _tfmot_quantize_model(k, model):
    from gate.measure.tfenv import tfmot

    qk = tfmot().quantization.keras
    clone = k.models.clone_model(model)
    clone.set_weights(model.get_weights())
    try:
        with qk.quantize_scope():
            qk.quantize_model(clone)
    except (ValueError, RuntimeError, AttributeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_gate_leaves_float_exactly_what_tfmot_cannot_quantize(k, name):
    build, classes = CASES[name]
    k.utils.set_random_seed(0)
    model = build(k)
    tfmot_error = _tfmot_quantize_model(k, model)
    flat = flatten(model) if nested_models(model) else model
    scheme, _ = scheme_for([])
    left = plan(flat, scheme)
    if name == "nested":   # tfmot refuses the nesting itself; inlined, it quantizes every layer
        assert "Quantizing a keras Model inside another keras Model is not supported" in tfmot_error
        assert left == []
    elif tfmot_error is None:
        assert left == [], f"quantize_model takes {name} as it is; the gate left {left} float"
        return
    else:
        assert left, f"tfmot refused {name} ({tfmot_error[:200]}), the gate's plan found nothing"
        assert {f.cls for f in left} == classes and all(f.reason for f in left)
    found = list(left)
    work = k.models.clone_model(flat)
    work.set_weights(flat.get_weights())
    qat_model = quantize(work, scheme, found)
    assert found == left, "quantize_apply named a layer the plan missed"
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype(np.float32)
    assert np.isfinite(qat_model(x, training=True).numpy()).all()


def test_the_bn_after_a_concat_is_named_with_its_producer(k):
    left = {f.layer: f.reason for f in plan(dense_block(k), scheme_for([])[0])}
    assert left["cat_bn"].startswith("BatchNormalization after Concatenate")
    assert "pool" in left and "Concatenate" in left["pool"] and "same scale" in left["pool"]
    assert "pre_bn" in left    # after a ReLU, not a conv: tfmot has nothing to fold it into


@pytest.mark.parametrize("preserve", [["sparsity"], ["clusters"], ["sparsity", "clusters"]])
def test_the_collaborative_schemes_decide_with_their_own_registries(k, preserve):
    """Their registries say supports() for Rescaling/Multiply/TFOpLambda and then raise in
    get_quantize_config; quantize_apply asks that of unannotated layers feeding annotated
    ones (measured: prune-int8 on MobileNetV3Small). The gate's scheme answers honestly."""
    scheme, _ = scheme_for(preserve)
    model = preprocessing_and_hard_swish(k)
    left = plan(model, scheme)
    assert {f.cls for f in left} >= {"Rescaling", "Multiply"}
    found = list(left)
    quantize(model, scheme, found)
    assert found == left
    assert plan(conv_bn_cnn(k), scheme) == []


@pytest.mark.slow
@pytest.mark.parametrize("app,works", [("MobileNetV2", True), ("MobileNetV3Small", False)])
def test_stock_applications_against_quantize_model(k, app, works):
    kw = {"alpha": 0.35} if app == "MobileNetV2" else {}
    model = getattr(k.applications, app)(input_shape=(32, 32, 3), weights=None, classes=10, **kw)
    tfmot_error = _tfmot_quantize_model(k, model)
    assert (tfmot_error is None) == works, tfmot_error
    scheme, _ = scheme_for([])
    left = plan(model, scheme)
    if works:
        assert left == []
        return
    assert {f.cls for f in left} == {"Rescaling", "TFOpLambda", "Multiply"}
    found = list(left)
    work = k.models.clone_model(model)
    work.set_weights(model.get_weights())
    quantize(work, scheme, found)
    assert found == left
